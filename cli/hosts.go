package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// cmdHosts manages agentless hosts: list (the default), add, import, rm,
// label, trust.
func cmdHosts(ctx context.Context, args []string, w, ew io.Writer) error {
	args, removals := labelRemovals(args)
	fs, o := flags("hosts")
	id := fs.String("id", "", "add: the host's id (default: HOST)")
	user := fs.String("user", "", "add: SSH login (default: the master's [ssh] user)")
	port := fs.Int("port", 0, "add: SSH port (default 22)")
	key := fs.String("key", "", "add: private key file on the master (default: the master's keys and agent)")
	become := fs.Bool("become", false, "add: run commands with sudo -n")
	becomeUser := fs.String("become-user", "", "add: run commands with sudo -n -u USER (implies --become)")
	labels := fs.StringArray("label", nil, "add: label key=value (repeatable)")
	replace := fs.Bool("replace", false, "add: replace a host of the same id")
	remoteTmp := fs.String("remote-tmp", "", "add: where script and file commands are staged on the host: an absolute DIR or ~/DIR (default: the master's ssh.remote_tmp, else /tmp)")
	format := fs.String("format", "", "import: ini, yaml or roster (default: detected)")
	targets := fs.StringArrayP("target", "t", nil, "facts: gather the facts of these hosts again (repeatable, comma-separated)")
	proxyJump := fs.String("proxy-jump", "", "add: jump hosts, [user@]host[:port][,...] as ssh -J; \"none\": direct even if its group has some")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	sub := "list"
	if len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	addFlags := []string{"id", "user", "port", "key", "become", "label", "replace", "remote-tmp", "proxy-jump", "become-user"}
	if sub != "add" {
		for _, f := range addFlags {
			if fs.Changed(f) {
				return fmt.Errorf("--%s is for felix hosts add", f)
			}
		}
	}
	for f, want := range map[string]string{"format": "import", "target": "facts"} {
		if fs.Changed(f) && sub != want {
			return fmt.Errorf("--%s is for felix hosts %s", f, want)
		}
	}
	switch sub {
	case "list":
		if len(rest) > 0 {
			return fmt.Errorf("unexpected argument %q", rest[0])
		}
		return listHosts(ctx, c, o.Output, w)
	case "add":
		if len(rest) != 1 {
			return fmt.Errorf("want: felix hosts add HOST [--id ID] [--user U] [--port P] [--key PATH] [--become] [--become-user U] [--remote-tmp DIR] [--proxy-jump HOSTS] [--label k=v]...")
		}
		req := wire.HostRequest{ID: *id, User: *user, Port: *port, Key: *key, Become: *become, ProxyJump: *proxyJump}
		if err := model.ValidRemoteTmp(*remoteTmp); err != nil {
			return fmt.Errorf("--remote-tmp: %w", err)
		}
		req.RemoteTmp = *remoteTmp
		if err := model.ValidUser(*becomeUser); err != nil {
			return fmt.Errorf("--become-user: %w", err)
		}
		req.BecomeUser = *becomeUser
		if _, err := model.ParseProxyJump(req.ProxyJump); err != nil {
			return err
		}
		// HOST may carry its user and port: root@10.0.0.7:2222.
		u, h, p, err := model.ParseHostSpec(rest[0])
		if err != nil {
			return err
		}
		req.Host = h
		if u != "" {
			if req.User != "" && req.User != u {
				return fmt.Errorf("user given twice: %s@ and --user %s", u, req.User)
			}
			req.User = u
		}
		if p != 0 {
			if req.Port != 0 && req.Port != p {
				return fmt.Errorf("port given twice: :%d and --port %d", p, req.Port)
			}
			req.Port = p
		}
		for _, l := range *labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" {
				return fmt.Errorf("--label %q: want key=value", l)
			}
			if req.Labels == nil {
				req.Labels = map[string]string{}
			}
			req.Labels[k] = v
		}
		path := "/api/v1/hosts"
		if *replace {
			path += "?replace=true"
		}
		var host wire.Host
		if err := c.do(ctx, "POST", path, req, &host); err != nil {
			return err
		}
		if structured(o.Output) {
			return printAs(w, o.Output, host, nil)
		}
		printHosts(w, []wire.Host{host})
		return nil
	case "import":
		if len(rest) != 1 {
			return fmt.Errorf("want: felix hosts import FILE (- for stdin)")
		}
		return importHosts(ctx, c, o.Output, rest[0], *format, w)
	case "rm":
		if len(rest) == 0 {
			return fmt.Errorf("hosts rm: name at least one host id")
		}
		failed := false
		for _, id := range rest {
			if err := c.do(ctx, "DELETE", "/api/v1/hosts/"+url.PathEscape(id), nil, nil); err != nil {
				fmt.Fprintf(ew, "felix hosts rm %s: %s\n", id, visible(err.Error()))
				failed = true
				continue
			}
			fmt.Fprintf(w, "%s: removed\n", id)
		}
		if failed {
			return errFailed
		}
		return nil
	case "label":
		return labelHost(ctx, c, o.Output, rest, removals, w)
	case "trust":
		if len(rest) != 2 {
			return fmt.Errorf("want: felix hosts trust HOST[:PORT] FINGERPRINT")
		}
		return trustHost(ctx, c, o.Output, rest[0], rest[1], w)
	case "show":
		if len(rest) != 1 {
			return fmt.Errorf("want: felix hosts show ID")
		}
		return showHost(ctx, c, o.Output, rest[0], w)
	case "facts":
		if len(rest) > 0 {
			return fmt.Errorf("unexpected argument %q (name hosts with -t)", rest[0])
		}
		return hostFacts(ctx, c, o.Output, splitTargets(*targets), w)
	}
	return fmt.Errorf("hosts %q: want list, add, import, rm, label, trust, show or facts", sub)
}

func listHosts(ctx context.Context, c *client, format string, w io.Writer) error {
	var list wire.HostList
	if err := c.do(ctx, "GET", "/api/v1/hosts", nil, &list); err != nil {
		return err
	}
	if structured(format) {
		return printAs(w, format, list, list.Hosts)
	}
	printHosts(w, list.Hosts)
	return nil
}

// printHosts prints hosts as a table: ID | ADDRESS | USER | KEY | LABELS.
// A host with become shows "+sudo" after its user ("+sudo -u U" when it
// becomes another user than root); a minion of the same
// id is noted in the ID column, jump hosts after the address ("via ...").
func printHosts(w io.Writer, hosts []wire.Host) {
	t := newTable(w, "ID", "ADDRESS", "USER", "KEY", "LABELS")
	for _, h := range hosts {
		id := h.ID
		if h.Minion != "" {
			id += " (minion " + string(h.Minion) + ")"
		}
		user := h.User
		if user == "" {
			user = "(default)"
		}
		if h.Become {
			user += " +sudo"
		}
		if h.BecomeUser != "" {
			user += " -u " + h.BecomeUser
		}
		key := h.Key
		if key == "" {
			key = "(default)"
		}
		addr := net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
		if h.ProxyJump != "" {
			addr += " via " + h.ProxyJump
		}
		t.AppendRow(table.Row{id, addr, user, key, formatLabels(h.Labels, ",")})
	}
	t.Render()
}

func importHosts(ctx context.Context, c *client, format, file, inventoryFormat string, w io.Writer) error {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return err
	}
	var res wire.ImportResult
	path := "/api/v1/hosts/import"
	if inventoryFormat != "" {
		path += "?format=" + url.QueryEscape(inventoryFormat)
	}
	if err := c.doBody(ctx, "POST", path, "text/plain; charset=utf-8", bytes.NewReader(b), &res); err != nil {
		return err
	}
	if structured(format) {
		return printAs(w, format, res, nil)
	}
	fmt.Fprintf(w, "%s added, %d updated\n", plural(res.Added, "host"), res.Updated)
	return nil
}

// labelHost sets and removes a host's labels: args are the host id, then
// key=value to set and -key to remove.
func labelHost(ctx context.Context, c *client, format string, args, removals []string, w io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("want: felix hosts label ID key=value... -key...")
	}
	id := args[0]
	req, err := labelRequest(args[1:], removals)
	if err != nil {
		return err
	}
	var h wire.Host
	if err := c.do(ctx, "PUT", "/api/v1/hosts/"+url.PathEscape(id)+"/labels", req, &h); err != nil {
		return err
	}
	if structured(format) {
		return printAs(w, format, h, nil)
	}
	printHosts(w, []wire.Host{h})
	return nil
}

// trustHost asks the master to record a host's key once it has the
// fingerprint the operator checked on the host. HOST is a host id or an
// address; PORT, when given, overrides the host's.
func trustHost(ctx context.Context, c *client, format, hostPort, fp string, w io.Writer) error {
	_, host, port, err := model.ParseHostSpec(hostPort)
	if err != nil {
		return err
	}
	if strings.Contains(hostPort, "@") {
		return fmt.Errorf("%q: want HOST[:PORT]; host keys do not depend on the user", hostPort)
	}
	if _, err := model.ValidFingerprint(fp); err != nil {
		return err
	}
	var ans wire.Trusted
	if err := c.do(ctx, "POST", "/api/v1/hosts/"+url.PathEscape(host)+"/trust", wire.TrustRequest{Fingerprint: fp, Port: port}, &ans); err != nil {
		return err
	}
	if structured(format) {
		return printAs(w, format, ans, nil)
	}
	fmt.Fprintf(w, "%s: trusted %s\n", net.JoinHostPort(ans.Host, strconv.Itoa(ans.Port)), ans.Fingerprint)
	return nil
}

// showHost prints one agentless host: its settings, groups and facts.
func showHost(ctx context.Context, c *client, format, id string, w io.Writer) error {
	var h wire.Host
	if err := c.do(ctx, "GET", "/api/v1/hosts/"+url.PathEscape(id), nil, &h); err != nil {
		return err
	}
	if structured(format) {
		return printAs(w, format, h, nil)
	}
	user := h.User
	if user == "" {
		user = "(default)"
	}
	t := newTable(w, "FIELD", "VALUE")
	t.AppendRows([]table.Row{
		{"id", h.ID}, {"address", net.JoinHostPort(h.Host, strconv.Itoa(h.Port))}, {"user", user}, {"key", h.Key},
		{"become", h.Become}, {"become user", h.BecomeUser}, {"minion", h.Minion}, {"labels", formatLabels(h.Labels, ", ")},
		{"groups", strings.Join(h.Groups, ", ")}, {"facts gathered", factsAge(h.FactsGatheredAt)},
	})
	if h.FactsError != "" {
		t.AppendRow(table.Row{"facts error", h.FactsError})
	}
	t.AppendRows(factRows(h.Facts))
	t.Render()
	return nil
}

// factsAge shows when facts were gathered.
func factsAge(at *time.Time) string {
	if at == nil {
		return "never"
	}
	return ago(*at)
}

// hostFacts prints the facts of agentless hosts: those stored, or with
// targets those gathered again now. A host whose facts could not be
// gathered is an error (exit 1) after the table.
func hostFacts(ctx context.Context, c *client, format string, targets []string, w io.Writer) error {
	var rows []wire.HostFacts
	if len(targets) == 0 {
		var list wire.HostList
		if err := c.do(ctx, "GET", "/api/v1/hosts", nil, &list); err != nil {
			return err
		}
		for _, h := range list.Hosts {
			rows = append(rows, wire.HostFacts{ID: h.ID, Facts: h.Facts, GatheredAt: h.FactsGatheredAt, Error: h.FactsError})
		}
	} else {
		var res wire.HostFactsList
		if err := c.do(ctx, "POST", "/api/v1/hosts/facts", wire.HostFactsRequest{Targets: targets}, &res); err != nil {
			return err
		}
		rows = res.Hosts
	}
	if structured(format) {
		return printAs(w, format, wire.HostFactsList{Hosts: rows}, rows)
	}
	t := newTable(w, "ID", "OS", "KERNEL", "ARCH", "CPUS", "GATHERED", "ERROR")
	failed := false
	for _, r := range rows {
		var f struct {
			OSName    string `json:"os_name"`
			OSVersion string `json:"os_version"`
			Kernel    string `json:"kernel"`
			Arch      string `json:"arch"`
			CPUs      int    `json:"cpus"`
		}
		cpus := ""
		if json.Unmarshal(r.Facts, &f) == nil && r.Facts != nil {
			cpus = strconv.Itoa(f.CPUs)
		}
		if r.Error != "" && len(targets) > 0 {
			failed = true
		}
		t.AppendRow(table.Row{r.ID, strings.TrimSpace(f.OSName + " " + f.OSVersion), f.Kernel, f.Arch, cpus, factsAge(r.GatheredAt), r.Error})
	}
	t.Render()
	if failed {
		return errFailed
	}
	return nil
}
