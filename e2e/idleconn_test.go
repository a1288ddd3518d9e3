package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleMinionConnection: the master closes a minion's connection once
// no call used it for exec.idle_timeout, keeps it while a command runs,
// dials again for the next command, and sees the minion healthy all along
// without holding a connection for health (its probes shake hands and
// hang up).
func TestIdleMinionConnection(t *testing.T) {
	t.Setenv("FELIX_MASTER_EXEC_IDLE_TIMEOUT", "1s")
	c := startMaster(t)
	join, errOut, code := c.felix("token", "join", "--auto-accept")
	if code != 0 {
		t.Fatalf("felix token join: exit %d: %s", code, errOut)
	}
	c.startMinion("i1", "127.0.0.61", strings.TrimSpace(join))
	waitFor(t, "i1 accepted and healthy", 60*time.Second, func() bool {
		m := c.minions()["i1"]
		return m.State == "accepted" && m.Health == "ok"
	})
	addr := c.minions()["i1"].Address
	master := c.master.cmd.Process.Pid
	conns := func() int { return establishedTo(t, master, addr) }

	// Health rounds (every 500 ms here) hold no connection: none stays.
	waitFor(t, "no master connection to the idle minion", 30*time.Second, func() bool { return conns() == 0 })
	seen := c.minions()["i1"].LastSeen
	waitFor(t, "a health probe after that", 30*time.Second, func() bool {
		m := c.minions()["i1"]
		return m.Health == "ok" && !m.LastSeen.Equal(seen)
	})

	// A command running longer than the idle timeout keeps its connection.
	marker := filepath.Join(t.TempDir(), "ran")
	done := make(chan string, 1)
	go func() {
		out, errOut, code := c.felix("exec", "-t", "i1", "--", "sleep 4; echo x >> "+marker)
		done <- fmt.Sprintf("exit %d: %s%s", code, out, errOut)
	}()
	waitFor(t, "the master's connection to the minion while the command runs", 60*time.Second, func() bool { return conns() == 1 })
	if res := <-done; !strings.HasPrefix(res, "exit 0:") {
		t.Fatalf("felix exec sleep 4: %s", res)
	}
	waitFor(t, "the idle connection closed", 30*time.Second, func() bool { return conns() == 0 })

	// The next command dials again and runs once.
	out, errOut, code := c.felix("exec", "-t", "i1", "--", "echo y >> "+marker)
	if code != 0 {
		t.Fatalf("felix exec after the idle close: exit %d: %s%s", code, out, errOut)
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "x\ny\n" {
		t.Errorf("marker = %q, %v; want each command run exactly once", b, err)
	}
	if m := c.minions()["i1"]; m.Health != "ok" {
		t.Errorf("i1 health %q; want ok", m.Health)
	}
}

// establishedTo counts the established TCP connections process pid holds
// to addr (an IPv4 host:port), from /proc: its socket inodes matched
// against /proc/net/tcp.
func establishedTo(t *testing.T, pid int, addr string) int {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("minion address %q: %v", addr, err)
	}
	ip := net.ParseIP(host).To4()
	p, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		t.Fatalf("minion address %q: want IPv4 host:port", addr)
	}
	// /proc/net/tcp writes the address as the in-memory u32, host order.
	want := fmt.Sprintf("%08X:%04X", binary.LittleEndian.Uint32(ip), p)

	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("list the master's descriptors: %v", err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(link, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		t.Fatalf("read the master's TCP table: %v", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "01" || !strings.EqualFold(fields[2], want) {
			continue
		}
		if inodes[fields[9]] {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read the master's TCP table: %v", err)
	}
	return n
}
