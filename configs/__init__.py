"""The builders' named configs, one YAML file each (installed as ``owa_builders.named_configs``).

These files are the only definition of the named configs: each builder reads its own
(`owa_builders.config_files.named_configs_from_files`). ``versions.lock.json`` records each one's version
and a hash of its values, so that values cannot change under an unchanged version.
"""
