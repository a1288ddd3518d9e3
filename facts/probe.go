package facts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// probeMarker starts a section of the probe script's output; the section's
// name follows it on the same line.
const probeMarker = "@@felix-probe "

// probeScript prints one section per fact source. Each section starts with
// a marker on a line of its own (preceded by a newline, so the marker starts
// a line even after output without a trailing newline). It uses only POSIX
// sh, coreutils-style tools and /proc, and always exits 0: a missing source
// leaves its section empty.
const probeScript = `s() { printf '\n` + probeMarker + `%s\n' "$1"; }
s hostname; uname -n 2>/dev/null || cat /proc/sys/kernel/hostname 2>/dev/null
s os-release; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
s system; uname -s 2>/dev/null
s kernel; uname -r 2>/dev/null
s arch; uname -m 2>/dev/null
s cpus; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null
s meminfo; cat /proc/meminfo 2>/dev/null
if command -v ip >/dev/null 2>&1; then s ip-addr; ip -o addr show up 2>/dev/null; else s hostname-i; hostname -I 2>/dev/null; fi
s uptime; cat /proc/uptime 2>/dev/null
exit 0
`

// ProbeScript returns the shell script whose output FromProbe parses. It is
// fixed text, run on a host without a minion (given to /bin/sh on its
// standard input), and gathers the same facts Gather reads locally.
func ProbeScript() string { return probeScript }

// FromProbe parses the output of ProbeScript into Facts, using the same
// parsers as Gather. A fact whose section is missing, empty or malformed is
// left empty; an error is returned only when no fact at all could be parsed.
func FromProbe(out []byte) (Facts, error) {
	sections, err := splitProbe(out)
	if err != nil {
		return Facts{}, err
	}
	var f Facts
	var errs []error
	ok := 0
	try := func(name string, parse func(body []byte) error) {
		body, found := sections[name]
		if !found {
			return
		}
		if err := parse(body); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		ok++
	}
	oneLine := func(dst *string) func([]byte) error {
		return func(body []byte) error {
			s := strings.TrimSpace(string(body))
			if s == "" || strings.ContainsAny(s, "\n\r") {
				return errors.New("want one non-empty line")
			}
			*dst = s
			return nil
		}
	}
	try("hostname", oneLine(&f.Hostname))
	try("os-release", func(b []byte) error {
		rel, err := parseOSRelease(bytes.NewReader(b))
		if err != nil {
			return err
		}
		if len(rel) == 0 {
			return errors.New("empty")
		}
		f.OSName, f.OSVersion, f.OSPretty = rel["ID"], rel["VERSION_ID"], rel["PRETTY_NAME"]
		return nil
	})
	try("system", func(b []byte) error {
		var sys string
		if err := oneLine(&sys)(b); err != nil {
			return err
		}
		f.System = strings.ToLower(sys) // "Linux" → "linux", as Go names it
		return nil
	})
	try("kernel", oneLine(&f.Kernel))
	try("arch", oneLine(&f.Arch))
	try("cpus", func(b []byte) error {
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || n <= 0 {
			return fmt.Errorf("malformed count %q", strings.TrimSpace(string(b)))
		}
		f.CPUs = n
		return nil
	})
	try("meminfo", func(b []byte) (err error) {
		f.MemoryBytes, err = parseMemTotal(bytes.NewReader(b))
		return err
	})
	try("uptime", func(b []byte) (err error) {
		f.UptimeSeconds, err = parseUptime(bytes.NewReader(b))
		return err
	})
	try("ip-addr", func(b []byte) error {
		f.IPs = sortedIPs(parseIPAddr(b))
		return nil
	})
	try("hostname-i", func(b []byte) error {
		f.IPs = sortedIPs(parseHostnameI(b))
		return nil
	})
	if ok == 0 {
		if len(errs) == 0 {
			return f, errors.New("parse probe output: no facts found")
		}
		return f, fmt.Errorf("parse probe output: %w", errors.Join(errs...))
	}
	return f, nil
}

// splitProbe cuts probe output into its sections by name. Output before the
// first marker (a login shell's noise) is ignored. It fails when there is
// no marker at all.
func splitProbe(out []byte) (map[string][]byte, error) {
	sections := make(map[string][]byte)
	cur := ""
	found := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if name, ok := bytes.CutPrefix(line, []byte(probeMarker)); ok {
			cur = strings.TrimSpace(string(name))
			found = true
			if _, dup := sections[cur]; !dup {
				sections[cur] = []byte{}
			}
			continue
		}
		if !found {
			continue
		}
		sections[cur] = append(append(sections[cur], line...), '\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse probe output: %w", err)
	}
	if !found {
		return nil, errors.New("parse probe output: not the output of the facts probe")
	}
	return sections, nil
}

// parseIPAddr returns the addresses in `ip -o addr` output: the word after
// each "inet" or "inet6", without its prefix length.
func parseIPAddr(b []byte) []netip.Addr {
	var addrs []netip.Addr
	for line := range strings.Lines(string(b)) {
		fields := strings.Fields(line)
		for i := 0; i+1 < len(fields); i++ {
			if fields[i] != "inet" && fields[i] != "inet6" {
				continue
			}
			if p, err := netip.ParsePrefix(fields[i+1]); err == nil {
				addrs = append(addrs, p.Addr())
			} else if a, err := netip.ParseAddr(fields[i+1]); err == nil {
				addrs = append(addrs, a)
			}
			break
		}
	}
	return addrs
}

// parseHostnameI returns the addresses in `hostname -I` output.
func parseHostnameI(b []byte) []netip.Addr {
	var addrs []netip.Addr
	for _, w := range strings.Fields(string(b)) {
		if a, err := netip.ParseAddr(w); err == nil {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// sortedIPs keeps the global and loopback unicast addresses, as Gather
// does, and returns them sorted, without duplicates or zones.
func sortedIPs(in []netip.Addr) []string {
	var addrs []netip.Addr
	for _, ip := range in {
		ip = ip.Unmap().WithZone("")
		if ip.IsGlobalUnicast() || ip.IsLoopback() {
			addrs = append(addrs, ip)
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	ips := make([]string, len(addrs))
	for i, a := range addrs {
		ips[i] = a.String()
	}
	return ips
}
