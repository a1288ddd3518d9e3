// Package cli is the felix command line: an operator's client of the
// master's REST API that prints tables (go-pretty) or JSON (-o json).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/pflag"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/model"
)

const usage = `felix: run commands on many servers through a felix master.

Usage:
  felix minions [-o json]                    list minions
  felix minions label ID key=value... -key...
                                             set and remove a minion's labels
  felix minions upgrade -t TARGETS [--canary N] [--batch N|N%] [--fail-threshold N]
        [--binary FILE] [--timeout D] [--async] [-o json]
                                             upgrade minions' binaries (canary first, rollback)
  felix minion ID [-o json]                  show one minion with its facts
  felix keys [-o json]                       minion keys: pending, accepted, rejected
  felix keys accept|reject|delete ID...      decide on minion keys
  felix hosts [list] [-o json]               list agentless (SSH) hosts
  felix hosts add [USER@]HOST[:PORT] [--id ID] [--user U] [--port P] [--key PATH]
        [--become] [--become-user U] [--remote-tmp DIR] [--proxy-jump [U@]JUMP[:P][,...]] [--label k=v]... [--replace]
                                             add an agentless host
  felix hosts import FILE [--format ini|yaml|roster]
                                             add hosts from a file ([user@]host[:port] a
                                             line, an Ansible INI or YAML inventory, a
                                             salt-ssh roster; detected by default); all or none
  felix hosts show ID [-o json]              show one agentless host with its groups and facts
  felix hosts facts [-t TARGETS] [-o json]   agentless hosts' facts; with -t gather them
                                             again over SSH first
  felix hosts rm ID...                       forget agentless hosts
  felix hosts label ID key=value... -key...  set and remove a host's labels
  felix hosts trust HOST[:PORT] FINGERPRINT  trust a host's SSH key after checking its
                                             fingerprint (SHA256:...) on the host
  felix exec -t TARGETS [flags] -- COMMAND   run a command line on the targets
  felix exec -t TARGETS [flags] --script FILE [-- ARGS...]
                                             run a local script on the targets
  felix exec -t TARGETS [flags] --file FILE -- COMMAND
                                             upload FILE, run COMMAND in its directory
  felix cp SRC -t TARGETS DEST [--mode 0644] [--owner U:G] [--mkdir] [--backup] [-r]
        [--follow-symlinks]
                                             push a file (or with -r a tree) to the targets;
                                             hosts that have it already receive nothing
  felix fetch -t TARGETS PATH OUTDIR [--follow-symlinks]
                                             copy PATH from every target to OUTDIR/HOST/
  felix pkg install|remove|upgrade|list|info -t TARGETS [NAME[=VERSION]...] [--dry-run]
        [--refresh] [--manager M] [--installroot DIR]
                                             manage packages through each host's manager;
                                             one row per package per group of hosts alike
  felix apply NAME|FILE -t TARGETS [--dry-run] [--check] [--rev N]
                                             make hosts as a state document says (a stored
                                             config, or a file); --check exits 2 on drift
  felix config put NAME FILE | get NAME [--rev N] | list | history NAME | rm NAME
                                             store state documents, every revision kept
  felix jobs [--state S] [--id ID] [--limit N] [--before JOB] [-o json]
                                             list jobs, newest first
  felix job JOB_ID [--no-fold|--diff] [--lines N] [-o json]
                                             show a job's results and callbacks
  felix job output JOB_ID HOST [--stderr] [--raw]
                                             a host's whole stored output as stored (on a
                                             terminal escapes are shown, not acted on, unless
                                             --raw; -o json: its result)
  felix job cancel JOB_ID                    cancel a running job
  felix job rerun JOB_ID [--failed] [--async]
                                             run a job again (--failed: its failed hosts)
  felix bootstrap [USER@]HOST[:PORT]... [-f FILE] [--port P] [--id ID] [--key PATH] [--no-ssh-fallback] [--become]
        [--proxy-jump [U@]JUMP[:P][,...]]
                                             install minions over SSH (rerun: repair, upgrade)
  felix token join [--auto-accept] [--ttl 24h] [--uses N]
                                             issue a join token for new minions
  felix token create NAME --role read|operator|admin [--ttl 720h] [--scope role=web,...]
                                             issue an API token (admin only); printed once;
                                             --scope limits it to those hosts and its own jobs
  felix token list                           API tokens: name, role, created, expires
  felix token revoke NAME                    revoke an API token at once
  felix audit [--limit N] [--before ID]      who changed what, newest first (admin only)
  felix version                              print the version
  felix help [COMMAND]...                    a command's synopsis, flags and examples
                                             (the same as felix COMMAND --help)
  felix completion bash|zsh|fish             print the shell completion script (commands,
                                             flags, and ids from the master)

Targets (-t, repeatable, comma-separated): ids, globs over accepted minions
and agentless hosts (web*, db[12]), IP addresses, CIDR ranges (10.0.0.0/24)
— these add up — and filters over labels and facts (role=web, os=debian),
which must all hold: -t 'web*' -t role=web,os=debian.

Exec flags:
  --timeout 60s            deadline per host (default: the master's)
  --id ID                  your own id, echoed in the results and callback
  --batch N|N%             run on N hosts (or N% of them) at a time
  --fail-threshold N       launch no more hosts after N failures
  --transport MODE         auto (default: the minion when accepted, else SSH, and
                           SSH when the minion cannot be reached), agent or ssh
  --user U                 SSH login for this run on hosts reached over SSH
  --become                 sudo -n for this run on hosts reached over SSH
  --become-user U          sudo -n -u U for this run (implies --become)
                           (minions ignore these; the host's sshd and sudoers decide)
  --dry-run                show the hosts it would run on, and how; run nothing
  --async                  print the job id and return at once
  --no-fold                a table row per host (exec, cp, fetch, pkg, apply,
                           minions upgrade, job; default: hosts with the same
                           result folded into one group under their host set,
                           web[01-40],db[1-3]; stdout | and stderr !)
  --lines N                lines of stdout and of stderr per group (default 10; 0: all)
  --diff                   the largest group once, the others as unified diffs against it
  -o FORMAT                table (default), wide (a row per host, every column),
                           json, yaml, or jsonl (a line per host as it finishes,
                           then a summary line)
  -v, --verbose            every notification's state after the results (default:
                           only the callbacks and Slack messages that failed)
cp and fetch take the same flags (their default timeout is the master's
files.timeout). cp stores content on the master once per sha256 and sends
only what a host lacks; each file is verified on the host and renamed into
place atomically. A DEST that is a symlink is refused unless
--follow-symlinks. With -r, modes are kept and symlinks copied as links.
pkg takes the same flags (its default timeout is files.timeout too): install
NAME or NAME=VERSION (that exact version), remove NAME, upgrade [NAME...]
(none: everything), list [GLOB], info NAME. Packages already as asked are
left alone (unchanged); the manager is apt, dnf, yum, zypper, apk or pacman:
--manager, else the host's pkg_manager label, else the first found on the
host. --dry-run reports what would change and changes nothing (apt: its own
simulation); --refresh updates the package index first.
exec, cp, fetch, pkg and job rerun wait for the job, showing progress on stderr when it is a
terminal, then print the results; Ctrl-C stops waiting, not the job. They
exit 1 when any host did not end ok. --script sends FILE (binary content as
base64) and runs ./FILE with the arguments after --, each quoted.

Exit status: 0 when the command did its work (display commands such as job,
jobs, minions, keys and hosts exit 0 whatever the results they show); 1 when
it failed, or when exec, cp, fetch, pkg, apply, minions upgrade, job rerun or
bootstrap had a host that did not end ok; 2 for a command line that names no
command (felix: unknown command ...; did you mean ...?) and for apply --check
when something would change.

Connection (flag, environment, or the config file ~/.config/felix/felix.toml):
  --master URL               FELIX_MASTER              master = "https://127.0.0.1:8443"
  --token TOKEN              FELIX_TOKEN               token = "fat_..."
  --master-fingerprint FP    FELIX_MASTER_FINGERPRINT  master_fingerprint = "sha256:..."
  --config PATH              FELIX_CONFIG
`

// options are the connection settings every command shares.
type options struct {
	ConfigPath  string
	Master      string `toml:"master"`
	Token       string `toml:"token"`
	Fingerprint string `toml:"master_fingerprint"`
	Output      string
}

// errFailed makes Main exit 1 without printing anything more.
var errFailed = errors.New("some hosts failed")

// flags returns a flag set with the shared connection flags.
func flags(name string) (*pflag.FlagSet, *options) {
	fs := pflag.NewFlagSet("felix "+name, pflag.ContinueOnError)
	o := &options{}
	fs.StringVar(&o.ConfigPath, "config", filepath.Join(config.DefaultDir("config", "felix"), "felix.toml"), "config file")
	fs.String("master", "", "master URL")
	fs.String("token", "", "API token")
	fs.String("master-fingerprint", "", "pinned master certificate fingerprint")
	fs.StringVarP(&o.Output, "output", "o", "table", "output format: table, wide, json, yaml or jsonl")
	return fs, o
}

// resolve applies the layers: config file, environment, flags.
func (o *options) resolve(fs *pflag.FlagSet) error {
	config.Override(&o.ConfigPath, fs, "config", "FELIX_CONFIG")
	if _, err := os.Stat(o.ConfigPath); err == nil {
		md, err := toml.DecodeFile(o.ConfigPath, o)
		if err != nil {
			return fmt.Errorf("config %s: %w", o.ConfigPath, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return fmt.Errorf("config %s: unknown key %s", o.ConfigPath, und[0])
		}
	}
	config.Override(&o.Master, fs, "master", "FELIX_MASTER")
	config.Override(&o.Token, fs, "token", "FELIX_TOKEN")
	config.Override(&o.Fingerprint, fs, "master-fingerprint", "FELIX_MASTER_FINGERPRINT")
	return checkFormat(o.Output)
}

// parse parses args and returns a connected client and the positional args.
// With describeArg last it returns the flag set instead (see describe);
// -h or --help returns pflag.ErrHelp, which shows the command's help.
func parse(fs *pflag.FlagSet, o *options, args []string) (*client, []string, error) {
	if n := len(args); n > 0 && args[n-1] == describeArg {
		return nil, nil, &describeErr{fs: fs, o: o}
	}
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if err := o.resolve(fs); err != nil {
		return nil, nil, err
	}
	c, err := newClient(*o)
	return c, fs.Args(), err
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(escapeJSON(b), '\n'))
	return err
}

func newTable(w io.Writer, header ...any) table.Writer {
	t := table.NewWriter()
	t.SetOutputMirror(w)
	t.SetStyle(table.StyleLight)
	t.AppendHeader(table.Row(header))
	return safeTable{t}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02")
}

func cmdMinions(ctx context.Context, args []string, w, ew io.Writer) error {
	if len(args) > 0 && args[0] == "upgrade" {
		return cmdUpgrade(ctx, args[1:], w, ew) // its own flags (upgrade.go)
	}
	args, removals := labelRemovals(args)
	fs, o := flags("minions")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 && rest[0] == "label" {
		return labelMinion(ctx, c, o.Output, rest[1:], removals, w)
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	var list wire.MinionList
	if err := c.do(ctx, "GET", "/api/v1/minions", nil, &list); err != nil {
		return err
	}
	if structured(o.Output) {
		return printAs(w, o.Output, list, list.Minions)
	}
	if o.Output == formatWide {
		return printMinionsWide(w, list.Minions)
	}
	t := newTable(w, "ID", "ADDRESS", "STATE", "HEALTH", "VERSION", "OS", "LABELS", "LAST SEEN")
	for _, m := range list.Minions {
		t.AppendRow(table.Row{m.ID, m.Address, m.State, m.Health, m.Version, m.OS, formatLabels(m.Labels, ","), ago(m.LastSeen)})
	}
	t.Render()
	return nil
}

// labelRemovals takes the "-key" words of "felix minions label ID ..." out
// of args before flag parsing, which would read them as flags. -o and -h
// stay flags; after "--" every word is left to the caller.
func labelRemovals(args []string) (rest, removals []string) {
	valueFlags := map[string]bool{"--config": true, "--master": true, "--token": true,
		"--master-fingerprint": true, "--output": true, "-o": true}
	label := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(rest, args[i:]...), removals
		case valueFlags[a]:
			rest = append(rest, a)
			if i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
			continue
		case label && len(a) > 1 && a[0] == '-' && a[1] != '-' && a != "-h":
			removals = append(removals, a[1:])
			continue
		case !label && !strings.HasPrefix(a, "-"):
			if a != "label" {
				return args, nil // not a label command
			}
			label = true
		}
		rest = append(rest, a)
	}
	return rest, removals
}

// labelRequest turns key=value (set) and -key (remove) arguments, plus keys
// already taken out as removals, into a labels request.
func labelRequest(args, removals []string) (wire.Labels, error) {
	req := wire.Labels{Remove: removals}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok && k != "" {
			if req.Set == nil {
				req.Set = map[string]string{}
			}
			req.Set[k] = v
		} else if k, ok := strings.CutPrefix(a, "-"); ok && k != "" {
			req.Remove = append(req.Remove, k)
		} else {
			return req, fmt.Errorf("label %q: want key=value to set or -key to remove", a)
		}
	}
	if len(req.Set) == 0 && len(req.Remove) == 0 {
		return req, fmt.Errorf("no labels: give key=value to set or -key to remove")
	}
	return req, nil
}

// labelMinion sets and removes a minion's labels: args are the minion id,
// then key=value to set and -key to remove.
func labelMinion(ctx context.Context, c *client, format string, args, removals []string, w io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("want: felix minions label ID key=value... -key...")
	}
	id := args[0]
	req, err := labelRequest(args[1:], removals)
	if err != nil {
		return err
	}
	var m wire.Minion
	if err := c.do(ctx, "PUT", "/api/v1/minions/"+url.PathEscape(id)+"/labels", req, &m); err != nil {
		return err
	}
	if structured(format) {
		return printAs(w, format, m, nil)
	}
	if len(m.Labels) == 0 {
		fmt.Fprintf(w, "%s: no labels\n", m.ID)
		return nil
	}
	t := newTable(w, "LABEL", "VALUE")
	for _, k := range sortedKeys(m.Labels) {
		t.AppendRow(table.Row{k, m.Labels[k]})
	}
	t.Render()
	return nil
}

// formatLabels shows labels as key=value, sorted, joined by sep.
func formatLabels(labels map[string]string, sep string) string {
	parts := make([]string, 0, len(labels))
	for _, k := range sortedKeys(labels) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, sep)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func cmdMinion(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("minion")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("want exactly one minion id")
	}
	var m wire.Minion
	if err := c.do(ctx, "GET", "/api/v1/minions/"+url.PathEscape(rest[0]), nil, &m); err != nil {
		return err
	}
	if structured(o.Output) {
		return printAs(w, o.Output, m, nil)
	}
	t := newTable(w, "FIELD", "VALUE")
	t.AppendRows([]table.Row{
		{"id", m.ID}, {"hostname", m.Hostname}, {"address", m.Address}, {"state", m.State},
		{"health", m.Health}, {"version", m.Version}, {"os", m.OS}, {"ips", strings.Join(m.IPs, ", ")},
		{"labels", formatLabels(m.Labels, ", ")}, {"fingerprint", m.Fingerprint}, {"registered", m.RegisteredAt.Local().Format(time.RFC3339)},
		{"last seen", ago(m.LastSeen)},
	})
	t.AppendRows(factRows(m.Facts))
	t.Render()
	return nil
}

// factRows are the rows "facts.KEY | VALUE" of a facts document, by key.
func factRows(raw json.RawMessage) []table.Row {
	var f map[string]any
	if json.Unmarshal(raw, &f) != nil {
		return nil
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([]table.Row, len(keys))
	for i, k := range keys {
		rows[i] = table.Row{"facts." + k, fmt.Sprint(f[k])}
	}
	return rows
}

func cmdKeys(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("keys")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 || rest[0] == "list" {
		var list wire.MinionList
		if err := c.do(ctx, "GET", "/api/v1/minions", nil, &list); err != nil {
			return err
		}
		if structured(o.Output) {
			return printAs(w, o.Output, list, list.Minions)
		}
		sort.SliceStable(list.Minions, func(i, j int) bool {
			return slices.Index(model.KeyStates, list.Minions[i].State) < slices.Index(model.KeyStates, list.Minions[j].State)
		})
		t := newTable(w, "STATE", "ID", "ADDRESS", "FINGERPRINT")
		for _, m := range list.Minions {
			t.AppendRow(table.Row{m.State, m.ID, m.Address, m.Fingerprint})
		}
		t.Render()
		return nil
	}
	action, ids := rest[0], rest[1:]
	if len(ids) == 0 {
		return fmt.Errorf("keys %s: name at least one minion id", action)
	}
	method, suffix := "POST", "/"+action
	switch action {
	case "accept", "reject":
	case "delete":
		method, suffix = "DELETE", ""
	default:
		return fmt.Errorf("keys %q: want accept, reject or delete", action)
	}
	failed := false
	for _, id := range ids {
		if err := c.do(ctx, method, "/api/v1/minions/"+url.PathEscape(id)+suffix, nil, nil); err != nil {
			fmt.Fprintf(ew, "felix keys %s %s: %s\n", action, id, visible(err.Error()))
			failed = true
			continue
		}
		fmt.Fprintf(w, "%s: %sed\n", id, strings.TrimSuffix(action, "e"))
	}
	if failed {
		return errFailed
	}
	return nil
}

func cmdToken(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("token")
	auto := fs.Bool("auto-accept", false, "join: accept minions joining with this token at once")
	ttl := fs.String("ttl", "", "validity (join: default 24h; create: default no expiry; 0: forever)")
	uses := fs.Int("uses", 0, "join: registrations allowed (default 1 with --auto-accept, else 1000; -1: unlimited)")
	role := fs.String("role", "", "create: read, operator or admin")
	scope := fs.StringSlice("scope", nil, "create: target patterns the token is limited to (role=web,db*); not for admin")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	sub := ""
	if len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	switch {
	case sub == "join" && len(rest) == 0:
		if *ttl == "" {
			*ttl = "24h"
		}
		var resp wire.JoinTokenResponse
		if err := c.do(ctx, "POST", "/api/v1/tokens/join", wire.JoinTokenRequest{AutoAccept: *auto, TTL: *ttl, Uses: *uses}, &resp); err != nil {
			return err
		}
		if structured(o.Output) {
			return printAs(w, o.Output, resp, nil)
		}
		fmt.Fprintln(w, resp.Token)
		return nil
	case sub == "create" && len(rest) == 1:
		if *role == "" {
			return fmt.Errorf("--role is required: read, operator or admin")
		}
		var tok wire.Token
		if err := c.do(ctx, "POST", "/api/v1/tokens", wire.TokenRequest{Name: rest[0], Role: *role, TTL: *ttl, Scope: *scope}, &tok); err != nil {
			return err
		}
		if structured(o.Output) {
			return printAs(w, o.Output, tok, nil)
		}
		fmt.Fprintln(w, tok.Token)
		return nil
	case sub == "list" && len(rest) == 0:
		var list wire.TokenList
		if err := c.do(ctx, "GET", "/api/v1/tokens", nil, &list); err != nil {
			return err
		}
		if structured(o.Output) {
			return printAs(w, o.Output, list, list.Tokens)
		}
		t := newTable(w, "NAME", "ROLE", "SCOPE", "CREATED", "EXPIRES")
		for _, tk := range list.Tokens {
			exp := "never"
			if tk.ExpiresAt != nil {
				exp = tk.ExpiresAt.Local().Format(time.DateTime)
			}
			scope := strings.Join(tk.Scope, ",")
			if scope == "" {
				scope = "all hosts"
			}
			t.AppendRow(table.Row{tk.Name, tk.Role, scope, tk.CreatedAt.Local().Format(time.DateTime), exp})
		}
		t.Render()
		return nil
	case sub == "revoke" && len(rest) == 1:
		if err := c.do(ctx, "DELETE", "/api/v1/tokens/"+url.PathEscape(rest[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s: revoked\n", rest[0])
		return nil
	}
	return fmt.Errorf("want: felix token join | create NAME --role ROLE | list | revoke NAME")
}

func cmdAudit(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("audit")
	limit := fs.Int("limit", 50, "entries, newest first")
	before := fs.Int64("before", 0, "only entries older than this id (the next of a previous page)")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *before > 0 {
		q.Set("before", strconv.FormatInt(*before, 10))
	}
	var log wire.AuditLog
	if err := c.do(ctx, "GET", "/api/v1/audit?"+q.Encode(), nil, &log); err != nil {
		return err
	}
	if structured(o.Output) {
		return printAs(w, o.Output, log, log.Entries)
	}
	t := newTable(w, "ID", "TIME", "WHO", "ROLE", "SOURCE", "REQUEST", "STATUS", "TARGETS", "JOB")
	for _, e := range log.Entries {
		t.AppendRow(table.Row{e.ID, e.At.Local().Format(time.DateTime), e.Who, e.Role, e.Source, e.Method + " " + e.Path,
			e.Status, e.Targets, e.JobID})
	}
	t.Render()
	if log.Next != 0 {
		fmt.Fprintf(w, "more: felix audit --before %d\n", log.Next)
	}
	return nil
}
