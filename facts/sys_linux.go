package facts

// memTotal is MemTotal from /proc/meminfo, in bytes.
func memTotal() (uint64, error) { return readFile("/proc/meminfo", parseMemTotal) }

// uptime is the whole seconds of /proc/uptime.
func uptime() (int64, error) { return readFile("/proc/uptime", parseUptime) }
