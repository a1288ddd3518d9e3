package testenv

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Notifications stands in for systemd's notification socket: a unixgram
// socket named in NOTIFY_SOCKET for the rest of the test (processes the
// test starts inherit it), keeping every datagram a daemon sends.
type Notifications struct {
	mu   sync.Mutex
	got  []string
	next int // the first datagram Next has not returned
}

// NotifySocket makes the socket (an abstract one, "@name", when abstract)
// and sets NOTIFY_SOCKET to it until the test ends.
func NotifySocket(t *testing.T, abstract bool) *Notifications {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	env := name
	if abstract {
		name = "\x00felix-test-" + filepath.Base(t.TempDir())
		env = "@" + name[1:]
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", env)
	n := &Notifications{}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.got = append(n.got, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// Count is how many datagrams so far begin with prefix.
func (n *Notifications) Count(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, g := range n.got {
		if strings.HasPrefix(g, prefix) {
			c++
		}
	}
	return c
}

// All is every datagram so far, in order.
func (n *Notifications) All() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.got...)
}

// Next waits up to 10 s for the datagram after the last one Next
// returned, failing the test without one.
func (n *Notifications) Next(t *testing.T) string {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		n.mu.Lock()
		if n.next < len(n.got) {
			s := n.got[n.next]
			n.next++
			n.mu.Unlock()
			return s
		}
		n.mu.Unlock()
	}
	t.Fatal("no datagram on the notification socket within 10 s")
	return ""
}
