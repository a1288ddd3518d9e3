// Package facts gathers the grains a minion reports about its host: OS
// release, kernel, architecture, CPUs, memory, addresses and uptime. It reads
// only /etc, /proc (sysctl on FreeBSD and macOS), uname and the network
// interfaces, so it needs no cgo and the minion stays cross-compilable.
package facts

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/felix-ops/felix/model"
)

// Facts are the grains a host reports about itself.
type Facts struct {
	Hostname      string   `json:"hostname"`
	System        string   `json:"system"`     // the OS family as Go names it: linux, freebsd, darwin, windows
	OSName        string   `json:"os_name"`    // os-release ID, e.g. "debian"
	OSVersion     string   `json:"os_version"` // os-release VERSION_ID, e.g. "12"
	OSPretty      string   `json:"os_pretty"`  // os-release PRETTY_NAME
	Kernel        string   `json:"kernel"`     // uname release, e.g. "6.1.0-18-amd64"
	Arch          string   `json:"arch"`       // uname machine, e.g. "x86_64"
	CPUs          int      `json:"cpus"`
	MemoryBytes   uint64   `json:"memory_bytes"` // MemTotal
	IPs           []string `json:"ips"`          // global and loopback unicast addresses of up interfaces, sorted, IPv4 and IPv6, no zone
	UptimeSeconds int64    `json:"uptime_seconds"`
}

// OS returns the OS name and version, e.g. "debian 12", or the pretty name
// when os-release has no ID.
func (f Facts) OS() string {
	if f.OSName == "" {
		return f.OSPretty
	}
	return strings.TrimSpace(f.OSName + " " + f.OSVersion)
}

// osReleasePaths are tried in order, as os-release(5) prescribes.
var osReleasePaths = []string{"/etc/os-release", "/usr/lib/os-release"}

// Gather reads the facts of this host. A fact that cannot be read is left
// empty; an error is returned only if no source at all could be read.
func Gather(ctx context.Context) (Facts, error) {
	if err := ctx.Err(); err != nil {
		return Facts{}, fmt.Errorf("gather facts: %w", err)
	}
	f := Facts{CPUs: runtime.NumCPU(), System: runtime.GOOS}
	var errs []error
	ok := 0
	try := func(err error) {
		if err != nil {
			errs = append(errs, err)
		} else {
			ok++
		}
	}

	try(func() (err error) {
		f.Hostname, err = os.Hostname()
		if err != nil {
			return fmt.Errorf("read hostname: %w", err)
		}
		return nil
	}())
	osFacts(&f, try)
	try(func() (err error) {
		f.IPs, err = addresses()
		return err
	}())

	if ok == 0 {
		return f, fmt.Errorf("gather facts: %w", errors.Join(errs...))
	}
	return f, nil
}

// readFile opens path and parses it with parse.
func readFile[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	fh, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", path, err)
	}
	defer fh.Close()
	v, err := parse(fh)
	if err != nil {
		return zero, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}

// readOSRelease reads the first os-release file that exists.
func readOSRelease() (map[string]string, error) {
	var err error
	for _, p := range osReleasePaths {
		var rel map[string]string
		if rel, err = readFile(p, parseOSRelease); err == nil {
			return rel, nil
		}
	}
	return nil, err
}

// parseOSRelease parses os-release(5) content: KEY=VALUE lines where VALUE
// may be single- or double-quoted with shell escapes. Comments, blank lines
// and malformed lines are skipped.
func parseOSRelease(r io.Reader) (map[string]string, error) {
	vars := make(map[string]string)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, raw, found := strings.Cut(line, "=")
		if !found || !model.ValidEnvName(key) {
			continue
		}
		if v, ok := unquote(raw); ok {
			vars[key] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read os-release: %w", err)
	}
	return vars, nil
}

// unquote undoes shell quoting of an os-release value: '…' is literal, "…"
// honours backslash before $ " \ and `, and outside quotes a backslash
// escapes any character. It reports false for an unterminated quote.
func unquote(s string) (string, bool) {
	var b strings.Builder
	var quote byte // 0, '\'' or '"'
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				b.WriteByte(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s) && strings.IndexByte("$\"\\`", s[i+1]) >= 0:
				i++
				b.WriteByte(s[i])
			default:
				b.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), quote == 0
}

// parseMemTotal returns MemTotal from /proc/meminfo content, in bytes.
func parseMemTotal(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 || len(fields) > 2 {
			return 0, fmt.Errorf("parse MemTotal %q: malformed", rest)
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse MemTotal: %w", err)
		}
		if len(fields) == 1 {
			return n, nil
		}
		if fields[1] != "kB" {
			return 0, fmt.Errorf("parse MemTotal: unknown unit %q", fields[1])
		}
		return n * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read meminfo: %w", err)
	}
	return 0, errors.New("no MemTotal line")
}

// parseUptime returns the whole seconds of uptime from /proc/uptime content.
func parseUptime(r io.Reader) (int64, error) {
	b, err := io.ReadAll(io.LimitReader(r, 256))
	if err != nil {
		return 0, fmt.Errorf("read uptime: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0, errors.New("empty uptime")
	}
	secs, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || secs < 0 {
		return 0, fmt.Errorf("parse uptime %q: malformed", fields[0])
	}
	return int64(secs), nil
}

// addresses returns the global and loopback unicast addresses of up
// interfaces, sorted and without duplicates or zones.
func addresses() ([]string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var addrs []netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		as, err := ifc.Addrs()
		if err != nil {
			continue // one unreadable interface does not spoil the rest
		}
		for _, a := range as {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				addrs = append(addrs, ip)
			}
		}
	}
	return sortedIPs(addrs), nil
}

// unameArch names a Go architecture as uname -m does on Linux, for hosts
// that have no uname.
func unameArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	}
	return goarch
}
