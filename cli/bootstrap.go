package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// cmdBootstrap installs minions over SSH through the master: felix
// bootstrap root@10.0.0.5 [more] [-f hosts.txt] [--port P] [--id ID]
// [--key PATH] [--no-ssh-fallback] [--become] [--proxy-jump HOSTS]. A host not in the agentless inventory
// is recorded there with the login used (its minion's SSH fallback) unless
// --no-ssh-fallback. It exits 1 when any host failed.
func cmdBootstrap(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("bootstrap")
	file := fs.StringP("file", "f", "", "read hosts from FILE, one [user@]host[:port] a line (- for stdin)")
	port := fs.Int("port", 0, "SSH port of hosts that name none (default 22)")
	id := fs.String("id", "", "minion id (a single host only; default: its existing id, else its host name)")
	key := fs.String("key", "", "private key file on the master (default: the master's configured keys)")
	noFallback := fs.Bool("no-ssh-fallback", false, "do not record hosts outside the agentless inventory as SSH hosts (their minion's fallback)")
	become := fs.Bool("become", false, "the login is not root: install with sudo -n (kept by the recorded SSH host)")
	proxyJump := fs.String("proxy-jump", "", "jump hosts, [user@]host[:port][,...] as ssh -J (needs bootstrap.master_url; kept by the recorded SSH host)")
	c, hosts, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if *file != "" {
		more, err := readHostList(*file)
		if err != nil {
			return err
		}
		hosts = append(hosts, more...)
	}
	if len(hosts) == 0 {
		return fmt.Errorf("name at least one host: felix bootstrap [USER@]HOST[:PORT]... or -f FILE")
	}
	if *id != "" && len(hosts) != 1 {
		return fmt.Errorf("--id names the minion of a single host; %s given", plural(len(hosts), "host"))
	}
	if _, err := model.ParseProxyJump(*proxyJump); err != nil {
		return err
	}
	if isTerminal(ew) {
		fmt.Fprintf(ew, "bootstrapping %s...\n", plural(len(hosts), "host"))
	}
	var resp wire.BootstrapResponse
	req := wire.BootstrapRequest{Hosts: hosts, ID: *id, Port: *port, Key: *key, Become: *become, ProxyJump: *proxyJump}
	if *noFallback {
		req.SSHFallback = new(bool)
	}
	if err := c.do(ctx, "POST", "/api/v1/bootstrap", req, &resp); err != nil {
		return err
	}
	failed := false
	for _, r := range resp.Results {
		failed = failed || r.State != "ok"
	}
	if structured(o.Output) {
		if err := printAs(w, o.Output, resp, resp.Results); err != nil {
			return err
		}
	} else {
		t := newTable(w, "HOST", "ID", "STATE", "ACTION", "ARCH", "INIT", "REASON")
		for _, r := range resp.Results {
			reason := r.Reason
			if r.Note != "" {
				reason = strings.TrimPrefix(reason+"; "+r.Note, "; ")
			}
			t.AppendRow(table.Row{r.Host, r.ID, r.State, r.Action, r.Arch, r.Init, reason})
		}
		t.Render()
	}
	if failed {
		return errFailed
	}
	return nil
}

// readHostList reads hosts, one a line; blank lines and # comments are
// skipped.
func readHostList(path string) ([]string, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("hosts file: %w", err)
		}
		defer f.Close()
		r = f
	}
	var hosts []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		switch f := strings.Fields(line); len(f) {
		case 0:
		case 1:
			hosts = append(hosts, f[0])
		default:
			return nil, fmt.Errorf("hosts file %s line %d: want one [user@]host[:port], not %q", path, n, strings.TrimSpace(line))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("hosts file %s: %w", path, err)
	}
	return hosts, nil
}
