"""Time units: every timestamp in a recording and in our rows is an int64 count of nanoseconds."""

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
