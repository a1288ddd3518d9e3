package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/felix-ops/felix/version"
)

// runFunc is a command's body: it parses its own flags from args (through
// flags and parse) and talks to the master.
type runFunc func(ctx context.Context, args []string, w, ew io.Writer) error

// spec describes a command for its help, man page and completion. Its
// flags are not written here: describe asks run for the flag set it builds.
type spec struct {
	use     string // name and synopsis, as cobra's Use
	short   string
	long    string
	example string
	run     runFunc // the top-level command's body; subcommands inherit it
	// subRequired: an unknown first word is an unknown subcommand (a
	// command whose positional arguments are ids has it false).
	subRequired bool
	args        completeFunc // completes positional arguments
	files       bool         // without args: local file names
	subs        []spec
}

// describeArg, as the last argument, makes parse return the command's
// flag set in a describeErr instead of running the command.
const describeArg = "\x00describe"

// describeErr carries a command's flags out of its body.
type describeErr struct {
	fs *pflag.FlagSet
	o  *options
}

func (describeErr) Error() string { return "describe" }

// usageError is a command line that names no command: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// commands is felix's command tree.
func commands() []spec {
	idsOf := func(kind string) lister { return listIDs(kind) }
	return []spec{
		{use: "minions", short: "list minions", run: cmdMinions, subRequired: true,
			long:    "List the minions with their address, key state, health, version, os, labels and when they were last seen.",
			example: "  felix minions\n  felix minions -o json",
			subs: []spec{
				{use: "label ID key=value... -key...", short: "set and remove a minion's labels", args: firstArg(idsOf("minions")),
					example: "  felix minions label web01 role=web env=prod\n  felix minions label web01 -env"},
				{use: "upgrade -t TARGETS", short: "upgrade minions' binaries (canary first, rollback)",
					long: "Send each minion the master's minion binary for its os/arch; a minion that does not come back within the timeout " +
						"rolls back. --canary upgrades N hosts first and stops unless they all end ok.",
					example: "  felix minions upgrade -t '*' --canary 1 --batch 10%\n  felix minions upgrade -t web01 --binary ./minion-linux-amd64"},
			}},
		{use: "minion ID", short: "show one minion with its facts", run: cmdMinion, args: firstArg(idsOf("minions")),
			example: "  felix minion web01\n  felix minion web01 -o json"},
		{use: "keys", short: "minion keys: pending, accepted, rejected", run: cmdKeys, subRequired: true,
			long:    "List minion keys, pending first; accept, reject or delete them by minion id.",
			example: "  felix keys\n  felix keys accept web01 web02\n  felix keys delete old01",
			subs: []spec{
				{use: "list", short: "list minion keys, pending first",
					example: "  felix keys list -o json"},
				{use: "accept ID...", short: "accept minions' keys", args: eachArg(idsOf("pending")),
					example: "  felix keys accept web01 web02"},
				{use: "reject ID...", short: "reject minions' keys", args: eachArg(idsOf("pending")),
					example: "  felix keys reject rogue1"},
				{use: "delete ID...", short: "forget minions and their keys", args: eachArg(idsOf("minions")),
					example: "  felix keys delete old01"},
			}},
		{use: "hosts", short: "agentless (SSH) hosts", run: cmdHosts, subRequired: true,
			long:    "List, add, import, show, label, trust and forget agentless hosts, which the master reaches over SSH.",
			example: "  felix hosts\n  felix hosts add admin@10.0.0.5:2222 --id db1 --label role=db\n  felix hosts rm db1",
			subs: []spec{
				{use: "list", short: "list agentless hosts",
					example: "  felix hosts list\n  felix hosts -o json"},
				{use: "add [USER@]HOST[:PORT]", short: "add an agentless host",
					example: "  felix hosts add 10.0.0.5 --id web3 --user deploy --become\n  felix hosts add db1.internal --proxy-jump bastion.example.com"},
				{use: "import FILE", short: "add hosts from a file, all or none", files: true,
					long: "Add hosts from a file: [user@]host[:port] a line, an Ansible INI or YAML inventory, or a salt-ssh roster " +
						"(detected unless --format). Every host is added or none.",
					example: "  felix hosts import inventory.ini\n  felix hosts import roster --format roster"},
				{use: "show ID", short: "show one agentless host with its groups and facts", args: firstArg(idsOf("hosts")),
					example: "  felix hosts show web3"},
				{use: "facts", short: "agentless hosts' facts; with -t gather them again over SSH first",
					example: "  felix hosts facts\n  felix hosts facts -t 'web*'"},
				{use: "rm ID...", short: "forget agentless hosts", args: eachArg(idsOf("hosts")), example: "  felix hosts rm web3 web4"},
				{use: "label ID key=value... -key...", short: "set and remove a host's labels", args: firstArg(idsOf("hosts")),
					example: "  felix hosts label web3 role=web -env"},
				{use: "trust HOST[:PORT] FINGERPRINT", short: "trust a host's SSH key after checking its fingerprint on the host",
					example: "  felix hosts trust 10.0.0.5 SHA256:Yf3..."},
			}},
		{use: "exec -t TARGETS [flags] -- COMMAND", short: "run a command line on the targets", run: cmdExec,
			long: "Run a command line (or with --script a local script, or with --file a command next to an uploaded file) on " +
				"the targets, wait for the job showing progress on a terminal, and print the results: hosts with the same " +
				"result folded into one group unless --no-fold. Ctrl-C stops waiting, not the job. Exits 1 when any host " +
				"did not end ok.\n\n" + targetsHelp,
			example: "  felix exec -t 'web*' -- uptime\n  felix exec -t role=db --batch 25% --timeout 2m -- systemctl restart postgresql\n" +
				"  felix exec -t web01 --script ./check.sh -- --verbose\n  felix exec -t '*' --dry-run -- reboot"},
		{use: "cp SRC -t TARGETS DEST", short: "push a file or a tree to the targets", run: cmdCp, files: true,
			long: "Push a file (or with -r a tree) to the targets. The master stores content once per sha256 and sends only what " +
				"a host lacks; each file is verified on the host and renamed into place atomically. A DEST that is a symlink " +
				"is refused unless --follow-symlinks. Exits 1 when any host did not end ok.\n\n" + targetsHelp,
			example: "  felix cp nginx.conf -t 'web*' /etc/nginx/nginx.conf --mode 0644 --owner root:root --backup\n" +
				"  felix cp -r ./site -t role=web /srv/site --mkdir"},
		{use: "fetch -t TARGETS PATH OUTDIR", short: "copy PATH from every target to OUTDIR/HOST/", run: cmdFetch, files: true,
			long:    "Copy PATH from every target into OUTDIR/HOST/. Exits 1 when any host did not end ok.\n\n" + targetsHelp,
			example: "  felix fetch -t 'web*' /var/log/nginx/error.log ./logs"},
		{use: "pkg", short: "manage packages through each host's manager", run: cmdPkg, subRequired: true,
			long: "Install, remove, upgrade, list or inspect packages through each host's manager (apt, dnf, yum, zypper, apk or " +
				"pacman: --manager, else the host's pkg_manager label, else the first found). Packages already as asked are " +
				"left alone. --dry-run reports what would change. Exits 1 when any host did not end ok.\n\n" + targetsHelp,
			example: "  felix pkg install -t 'web*' nginx curl=8.5.0-2\n  felix pkg upgrade -t role=db --dry-run\n  felix pkg list -t web01 'nginx*'",
			subs: []spec{
				{use: "install -t TARGETS NAME[=VERSION]...", short: "install packages (NAME=VERSION: that exact version)",
					example: "  felix pkg install -t 'web*' nginx curl=8.5.0-2\n  felix pkg install -t role=db postgresql --dry-run"},
				{use: "remove -t TARGETS NAME...", short: "remove packages",
					example: "  felix pkg remove -t 'web*' telnet"},
				{use: "upgrade -t TARGETS [NAME...]", short: "upgrade packages (none named: everything)",
					example: "  felix pkg upgrade -t role=db --refresh\n  felix pkg upgrade -t 'web*' openssl --dry-run"},
				{use: "list -t TARGETS [GLOB]", short: "list installed packages",
					example: "  felix pkg list -t web01 'nginx*'"},
				{use: "info -t TARGETS NAME", short: "show a package on each host",
					example: "  felix pkg info -t 'web*' nginx"},
			}},
		{use: "apply NAME|FILE -t TARGETS", short: "make hosts as a state document says", run: cmdApply, files: true,
			long: "Make hosts as a state document says: a stored config (felix config put) or a local file. --dry-run computes " +
				"every change and changes nothing; --check does the same and exits 2 when anything would change (drift). " +
				"Exits 1 when any host did not end ok.\n\n" + targetsHelp,
			example: "  felix apply web -t role=web\n  felix apply ./web.toml -t web01 --dry-run\n  felix apply web -t role=web --check"},
		{use: "config", short: "store state documents, every revision kept", run: cmdConfig, subRequired: true,
			example: "  felix config put web ./web.toml\n  felix config get web --rev 2\n  felix config history web",
			subs: []spec{
				{use: "put NAME FILE", short: "store a new revision of a state document", files: true,
					example: "  felix config put web ./web.toml"},
				{use: "get NAME", short: "print a stored state document",
					example: "  felix config get web\n  felix config get web --rev 2"},
				{use: "list", short: "list stored state documents",
					example: "  felix config list"},
				{use: "history NAME", short: "list a state document's revisions",
					example: "  felix config history web"},
				{use: "rm NAME", short: "remove a state document with every revision",
					example: "  felix config rm web"},
			}},
		{use: "jobs", short: "list jobs, newest first", run: cmdJobs,
			example: "  felix jobs\n  felix jobs --state running\n  felix jobs --limit 20 --before j-0123"},
		{use: "job JOB_ID", short: "show a job's results and callbacks", run: cmdJob, args: firstArg(idsOf("jobs")),
			long: "Show a job's results, folded as exec prints them, and its callbacks. It exits 0 whatever the hosts' " +
				"results (felix exec exits 1 when a host failed; felix job only displays).",
			example: "  felix job j-0123\n  felix job j-0123 --no-fold\n  felix job output j-0123 web01",
			subs: []spec{
				{use: "output JOB_ID HOST", short: "a host's whole stored output", args: jobThenHost,
					long: "Print a host's whole stored output as stored; on a terminal escapes are shown, not acted on, unless " +
						"--raw. With -o json: its result.",
					example: "  felix job output j-0123 web01 --stderr"},
				{use: "cancel JOB_ID", short: "cancel a running job", args: firstArg(idsOf("jobs")),
					example: "  felix job cancel j-0123"},
				{use: "rerun JOB_ID", short: "run a job again (--failed: its failed hosts)", args: firstArg(idsOf("jobs")),
					long:    "Run a job again and wait for it like exec. Exits 1 when any host did not end ok.",
					example: "  felix job rerun j-0123\n  felix job rerun j-0123 --failed"},
			}},
		{use: "bootstrap [USER@]HOST[:PORT]...", short: "install minions over SSH (rerun: repair, upgrade)", run: cmdBootstrap,
			long:    "Install minions over SSH (a rerun repairs or upgrades them). Exits 1 when any host failed.",
			example: "  felix bootstrap root@10.0.0.5 root@10.0.0.6\n  felix bootstrap -f hosts.txt --become"},
		{use: "token", short: "join tokens for minions and API tokens", run: cmdToken, subRequired: true,
			example: "  felix token join --auto-accept --ttl 1h\n  felix token create ci --role operator --scope role=web\n  felix token revoke ci",
			subs: []spec{
				{use: "join", short: "issue a join token for new minions",
					example: "  felix token join\n  felix token join --auto-accept --ttl 1h --uses 10"},
				{use: "create NAME --role read|operator|admin", short: "issue an API token (admin only); printed once",
					example: "  felix token create ci --role operator --ttl 720h\n  felix token create webdeploy --role operator --scope role=web"},
				{use: "list", short: "API tokens: name, role, created, expires",
					example: "  felix token list"},
				{use: "revoke NAME", short: "revoke an API token at once",
					example: "  felix token revoke ci"},
			}},
		{use: "audit", short: "who changed what, newest first (admin only)", run: cmdAudit,
			example: "  felix audit --limit 20"},
	}
}

// targetsHelp explains -t.
const targetsHelp = `Targets (-t, repeatable, comma-separated): ids, globs over accepted minions
and agentless hosts (web*, db[12]), IP addresses, CIDR ranges (10.0.0.0/24)
(these add up) and filters over labels and facts (role=web, os=debian),
which must all hold: -t 'web*' -t role=web,os=debian.`

// mode is what a run of Main needs from the command tree.
type mode int

const (
	modeRun      mode = iota
	modeComplete      // cobra parses flags, so every command has its flags
	modeMan           // every command has its flags
)

// tree builds the cobra commands of one run of Main.
type tree struct {
	ctx            context.Context
	m              mode
	stdout, stderr io.Writer
	described      map[*cobra.Command]*describeErr
}

// build makes the cobra command tree.
func build(ctx context.Context, m mode, stdout, stderr io.Writer) *cobra.Command {
	t := &tree{ctx: ctx, m: m, stdout: stdout, stderr: stderr, described: map[*cobra.Command]*describeErr{}}
	root := &cobra.Command{
		Use:                        "felix",
		Short:                      "run commands on many servers through a felix master",
		Long:                       rootHelp(),
		SilenceErrors:              true,
		SilenceUsage:               true,
		DisableFlagParsing:         true,
		DisableAutoGenTag:          true,
		SuggestionsMinimumDistance: 2,
		Args:                       cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				fmt.Fprint(stderr, rootHelp())
				return usageError{}
			case args[0] == "-h" || args[0] == "--help":
				return pflag.ErrHelp
			case strings.HasPrefix(args[0], "-"):
				return usageError{fmt.Sprintf("no command before %s: felix COMMAND [flags]; see felix --help", visible(args[0]))}
			}
			return unknownCommand(cmd, args[0])
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	root.CompletionOptions.HiddenDefaultCmd = false
	for _, s := range commands() {
		root.AddCommand(t.newCommand(s, s.run))
	}
	root.AddCommand(&cobra.Command{
		Use: "version", Short: "print the version", Args: cobra.NoArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(stdout, version.String())
			return nil
		},
	})
	root.AddCommand(&cobra.Command{
		Use: "__man DIR", Hidden: true, Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return writeManPages(root, args[0]) },
	})
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [COMMAND]...",
		Short: "help about a command: felix help exec = felix exec --help",
		ValidArgsFunction: func(c *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			parent, _, err := root.Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			for _, sub := range parent.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name()+"\t"+sub.Short)
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			cmd, rest, err := root.Find(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 && (cmd == root || cmd.HasSubCommands()) {
				return unknownCommand(cmd, rest[0])
			}
			return cmd.Help()
		},
	})
	def := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		if c == root {
			fmt.Fprint(c.OutOrStdout(), rootHelp())
			return
		}
		t.describe(c)
		c.InitDefaultHelpFlag() // as when run: felix help X = felix X --help
		def(c, args)
	})
	root.SetUsageTemplate(usageTemplate)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	if m != modeRun {
		t.describeAll(root)
	}
	return root
}

// newCommand makes the cobra command of s; run is the top-level body,
// which a subcommand calls with its name first.
func (t *tree) newCommand(s spec, run runFunc) *cobra.Command {
	cmd := &cobra.Command{
		Use: s.use, Short: s.short, Long: s.long, Example: s.example,
		// The body parses its flags itself, as it always has; only a
		// completion lets cobra parse them, to know what to complete.
		DisableFlagParsing: t.m != modeComplete,
		Args:               cobra.ArbitraryArgs,
		Annotations:        map[string]string{"felix_body": "yes"}, // describeFlags may run it
		// did you mean: names within two edits, or that start with the word
		SuggestionsMinimumDistance: 2,
	}
	if s.long == "" {
		cmd.Long = strings.ToUpper(s.short[:1]) + s.short[1:] + "."
	}
	if s.subRequired {
		cmd.Annotations["subRequired"] = "yes"
	}
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if n := len(args); n > 0 && args[n-1] == describeArg {
			return run(t.ctx, args, t.stdout, t.stderr)
		}
		if c.HasParent() && c.Parent().HasParent() { // a subcommand: its body is its parent's
			args = append([]string{c.Name()}, args...)
		} else if p := firstPositional(c, args); p != "" && c.Annotations["subRequired"] != "" {
			if _, ok := subcommand(c, p); !ok {
				return unknownCommand(c, p)
			}
		}
		return run(t.ctx, args, t.stdout, t.stderr)
	}
	cmd.ValidArgsFunction = func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if s.args == nil && s.files {
			return nil, cobra.ShellCompDirectiveDefault
		}
		if s.args == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return s.args(t.complete(c), args, toComplete)
	}
	for _, sub := range s.subs {
		cmd.AddCommand(t.newCommand(sub, run))
	}
	return cmd
}

// describeAll gives every command under c its flags.
func (t *tree) describeAll(c *cobra.Command) {
	for _, sub := range c.Commands() {
		t.describe(sub)
		t.describeAll(sub)
	}
}

// describe gives cmd the flags its body builds, once, and returns them.
func (t *tree) describe(cmd *cobra.Command) *describeErr {
	if d, ok := t.described[cmd]; ok {
		return d
	}
	d := describeFlags(cmd)
	t.described[cmd] = d
	if d == nil {
		return nil
	}
	conn, _ := flags("")
	d.fs.VisitAll(func(f *pflag.Flag) {
		if conn.Lookup(f.Name) != nil && f.Name != "output" {
			if f.Annotations == nil {
				f.Annotations = map[string][]string{}
			}
			f.Annotations["felix_connection"] = []string{"yes"}
		}
	})
	d.fs.VisitAll(func(f *pflag.Flag) {
		if !forOther(cmd, f) {
			cmd.Flags().AddFlag(f)
		}
	})
	if cmd.Flags().Lookup("target") != nil {
		_ = cmd.RegisterFlagCompletionFunc("target", func(c *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			return completeTargets(t.complete(c), toComplete)
		})
	}
	if cmd.Flags().Lookup("output") != nil {
		_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
	}
	return d
}

// forOther says whether f, from a flag set its command shares with its
// subcommands, is for another of them: its usage starts with that
// subcommand's name ("add: SSH port").
func forOther(cmd *cobra.Command, f *pflag.Flag) bool {
	name, _, ok := strings.Cut(f.Usage, ": ")
	if !ok || strings.ContainsAny(name, " ,") || name == cmd.Name() {
		return false
	}
	if _, ok := subcommand(cmd, name); ok {
		return true // the parent's own run takes none of its subcommands' flags
	}
	if !cmd.HasParent() || !cmd.Parent().HasParent() {
		return false
	}
	_, ok = subcommand(cmd.Parent(), name)
	return ok
}

// describeFlags runs cmd's body in describe mode: it returns the flag set
// the body builds for this command (and the options bound to it), or nil.
func describeFlags(cmd *cobra.Command) *describeErr {
	var path []string
	top := cmd
	for top.HasParent() && top.Parent().HasParent() {
		path = append([]string{top.Name()}, path...)
		top = top.Parent()
	}
	if top.Annotations["felix_body"] == "" {
		return nil
	}
	err := top.RunE(top, append(path, describeArg))
	var d *describeErr
	if errors.As(err, &d) {
		return d
	}
	return nil
}

// firstPositional is the first argument of args that is not a flag or a
// flag's value, as cmd's body would parse them.
func firstPositional(cmd *cobra.Command, args []string) string {
	d := describeFlags(cmd)
	if d == nil {
		return ""
	}
	d.fs.SetOutput(io.Discard)
	d.fs.Usage = func() {}
	d.fs.ParseErrorsAllowlist.UnknownFlags = true
	if d.fs.Parse(args) != nil || d.fs.NArg() == 0 {
		return ""
	}
	return d.fs.Arg(0)
}

// subcommand finds cmd's subcommand called name.
func subcommand(cmd *cobra.Command, name string) (*cobra.Command, bool) {
	for _, c := range cmd.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c, true
		}
	}
	return nil, false
}

// unknownCommand is the error for a command word that names nothing, with
// the nearest names when some are near.
func unknownCommand(parent *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", visible(name), parent.CommandPath())
	if s := parent.SuggestionsFor(name); len(s) > 0 {
		quoted := make([]string, len(s))
		for i, n := range s {
			quoted[i] = fmt.Sprintf("%q", n)
		}
		return usageError{msg + "; did you mean " + strings.Join(quoted, " or ") + "?"}
	}
	var names []string
	for _, c := range parent.Commands() {
		if c.IsAvailableCommand() && c.Name() != "help" && c.Name() != "completion" {
			names = append(names, c.Name())
		}
	}
	if n := len(names); n > 1 && parent.HasParent() {
		return usageError{fmt.Sprintf("%s; want %s or %s", msg, strings.Join(names[:n-1], ", "), names[n-1])}
	}
	return usageError{fmt.Sprintf("%s; see %s --help", msg, parent.CommandPath())}
}

// rootHelp is the general help, its config default the one --config shows.
func rootHelp() string {
	fs, _ := flags("")
	return strings.Replace(usage, "~/.config/felix/felix.toml", fs.Lookup("config").DefValue, 1)
}

// usageTemplate is a command's help after its description: synopsis,
// examples, subcommands, its own flags, then the connection flags.
const usageTemplate = `Usage:
  {{.UseLine}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} COMMAND{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if .IsAvailableCommand}}
  {{rpad .Name .NamePadding}} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{commandFlags . | trimTrailingWhitespaces}}{{end}}{{if connectionFlags .}}

Connection flags (else FELIX_MASTER, FELIX_TOKEN, FELIX_MASTER_FINGERPRINT, FELIX_CONFIG, else the config file):
{{connectionFlags . | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} COMMAND --help" for more about a command.{{end}}
`

func init() {
	split := func(c *cobra.Command, conn bool) string {
		fs := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if (len(f.Annotations["felix_connection"]) > 0) == conn {
				fs.AddFlag(f)
			}
		})
		return fs.FlagUsages()
	}
	cobra.AddTemplateFunc("commandFlags", func(c *cobra.Command) string { return split(c, false) })
	cobra.AddTemplateFunc("connectionFlags", func(c *cobra.Command) string { return split(c, true) })
}

// Main runs the felix command line and returns the exit status: 0, 1 when
// a command failed (a host did not end ok), 2 for a command line that names
// no command or an apply --check that found drift.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	m := modeRun
	if len(args) > 0 {
		switch args[0] {
		case cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			m = modeComplete
		case "__man":
			m = modeMan
		}
	}
	root := build(ctx, m, stdout, stderr)
	if args == nil {
		args = []string{} // not nil: cobra would read os.Args
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errFailed):
		return 1
	case errors.Is(err, errChanged):
		return 2
	case errors.As(err, &ue):
		if ue.msg != "" {
			fmt.Fprintf(stderr, "felix: %s\n", ue.msg)
		}
		return 2
	}
	name := cmd.Name()
	for c := cmd; c.HasParent(); c = c.Parent() {
		name = c.Name()
	}
	fmt.Fprintf(stderr, "felix %s: %s\n", name, visible(err.Error()))
	return 1
}
