package packages

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"path"
	"strings"

	"github.com/felix-ops/felix/model"
)

// lockWait stands for the seconds a manager may wait for its lock: what
// is left of the job's time, put in by host.exec.
const lockWait = "%LOCKWAIT%"

// cmd is one command: fixed env words, then argv (quoted when run).
type cmd struct {
	env  []string
	argv []string
}

// manager is how felix drives one package manager: the command of each
// step and how to read what the queries print.
type manager struct {
	name, binary string
	hasRoot      bool // takes an install root
	noPins       bool // installs only the version its repositories have

	refresh    func(root string) cmd
	query      func(root string, names []string) cmd
	parseQuery func(stdout []byte, names []string) (map[string]string, error)
	queryFails bool // a non-zero exit of query is an error (else: some names are not installed)

	candidates      func(root string, names []string) cmd
	parseCandidates func(stdout []byte, names []string) map[string]string
	candidatesFail  bool

	list      func(root, glob string) cmd
	parseList func(stdout []byte) (map[string]string, error)
	listFails bool

	install, remove, upgrade func(root string, pkgs []model.Pkg) cmd
	// simulate turns a change into the manager's own simulation (apt-get
	// -s, dnf --assumeno, zypper --dry-run, pacman --print, apk
	// --simulate), and parseSimulation reads what it printed: each package
	// it would touch with its version after ("" removed). remove says the
	// change was a removal.
	simulate        func(c cmd) cmd
	parseSimulation func(sim output, remove bool) (map[string]string, error)

	// lockHeld is what the manager prints when it gave up waiting for its
	// lock (another manager holds it).
	lockHeld []string
	// recovery is how an operator finishes what the manager left when it
	// was stopped mid-change.
	recovery string
}

// output is what one command printed, and its exit code.
type output struct {
	stdout, stderr []byte
	code           int
}

// failed reports a simulation that exited non-zero, with its last lines.
func (o output) failed() error {
	return fmt.Errorf("exit %d: %s", o.code, lastLines(append(append([]byte{}, o.stdout...), o.stderr...), 3))
}

var managers = map[string]*manager{
	model.PkgApt: apt, model.PkgDnf: rpmFamily(model.PkgDnf), model.PkgYum: rpmFamily(model.PkgYum),
	model.PkgZypper: zypper, model.PkgApk: apk, model.PkgPacman: pacman,
}

func names(pkgs []model.Pkg) []string {
	out := make([]string, len(pkgs))
	for i, p := range pkgs {
		out[i] = p.Name
	}
	return out
}

// pinned writes each package as NAME, or NAME SEP VERSION when pinned.
func pinned(pkgs []model.Pkg, sep string) []string {
	out := make([]string, len(pkgs))
	for i, p := range pkgs {
		out[i] = p.Name
		if p.Version != "" {
			out[i] += sep + p.Version
		}
	}
	return out
}

func withRoot(flag, root string, argv ...string) []string {
	if root == "" {
		return argv
	}
	return append([]string{argv[0], flag, root}, argv[1:]...)
}

// parseTabbed reads NAME<TAB>VERSION lines (a query format felix sets).
func parseTabbed(stdout []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, version, ok := strings.Cut(sc.Text(), "\t")
		if ok && name != "" && version != "" {
			out[name] = version
		}
	}
	return out
}

// apt: dpkg-query for what is installed, apt-cache policy for candidates,
// apt-get for changes (non-interactive, keeping changed config files,
// waiting for the dpkg lock), apt-get -s for dry runs.
var aptEnv = []string{"DEBIAN_FRONTEND=noninteractive", "NEEDRESTART_MODE=l"}

const dpkgFormat = "${db:Status-Abbrev}\t${Package}\t${Version}\n"

var apt = &manager{
	name: model.PkgApt, binary: "apt-get",
	refresh: func(string) cmd {
		return cmd{env: aptEnv, argv: []string{"apt-get", "-q", "-o", "DPkg::Lock::Timeout=" + lockWait, "update"}}
	},
	query: func(_ string, ns []string) cmd {
		return cmd{argv: append([]string{"dpkg-query", "-W", "-f", dpkgFormat, "--"}, ns...)}
	},
	parseQuery: func(stdout []byte, _ []string) (map[string]string, error) { return parseDpkg(stdout), nil },
	candidates: func(_ string, ns []string) cmd {
		return cmd{argv: append([]string{"apt-cache", "policy", "--"}, ns...)}
	},
	parseCandidates: parseAptPolicy,
	list: func(_, glob string) cmd {
		if glob == "" {
			return cmd{argv: []string{"dpkg-query", "-W", "-f", dpkgFormat}}
		}
		return cmd{argv: []string{"dpkg-query", "-W", "-f", dpkgFormat, "--", glob}}
	},
	parseList: func(stdout []byte) (map[string]string, error) { return parseDpkg(stdout), nil },
	install: func(_ string, pkgs []model.Pkg) cmd {
		return aptGet(append([]string{"install", "--allow-downgrades", "--"}, pinned(pkgs, "=")...)...)
	},
	remove: func(_ string, pkgs []model.Pkg) cmd {
		return aptGet(append([]string{"remove", "--"}, names(pkgs)...)...)
	},
	upgrade: func(_ string, pkgs []model.Pkg) cmd {
		if len(pkgs) == 0 {
			return aptGet("upgrade")
		}
		return aptGet(append([]string{"install", "--only-upgrade", "--"}, names(pkgs)...)...)
	},
	simulate: func(c cmd) cmd { return cmd{env: c.env, argv: insert(c.argv, 1, "-s")} },
	parseSimulation: func(o output, _ bool) (map[string]string, error) {
		if o.code != 0 {
			return nil, o.failed()
		}
		return parseAptSimulation(o.stdout), nil
	},
	lockHeld: []string{"Could not get lock", "Unable to acquire the dpkg frontend lock"},
	recovery: "dpkg --configure -a, then apt-get -f install",
}

// insert returns argv with words put in at index i (a new slice).
func insert(argv []string, i int, words ...string) []string {
	out := append(append(append([]string{}, argv[:i]...), words...), argv[i:]...)
	return out
}

// after returns the index just past the first word of argv that is one
// of subs (the subcommand), or len(argv).
func after(argv []string, subs ...string) int {
	for i, a := range argv {
		for _, s := range subs {
			if a == s {
				return i + 1
			}
		}
	}
	return len(argv)
}

// aptGet runs apt-get without a pty for dpkg (Dpkg::Use-Pty=0): with one,
// dpkg runs in a session of its own, out of reach of the process-group
// kill that stops a cancelled job.
func aptGet(args ...string) cmd {
	return cmd{env: aptEnv, argv: append([]string{"apt-get", "-q", "-y", "-o", "DPkg::Lock::Timeout=" + lockWait, "-o", "Dpkg::Use-Pty=0",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}, args...)}
}

// parseDpkg reads dpkgFormat lines: installed packages ("ii") only.
func parseDpkg(stdout []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(stdout), "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 3 && strings.HasPrefix(f[0], "ii") && f[1] != "" {
			out[strings.Split(f[1], ":")[0]] = f[2]
		}
	}
	return out
}

// parseAptPolicy reads apt-cache policy: "NAME:" then "  Candidate: V".
func parseAptPolicy(stdout []byte, _ []string) map[string]string {
	out := map[string]string{}
	name := ""
	for _, line := range strings.Split(string(stdout), "\n") {
		if line != "" && line[0] != ' ' && strings.HasSuffix(line, ":") {
			name = strings.TrimSuffix(line, ":")
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && name != "" && v != "(none)" {
			out[name] = v
		}
	}
	return out
}

// parseAptSimulation reads apt-get -s: "Inst NAME [OLD] (NEW ...)" and
// "Remv NAME [OLD]"; the version after, "" for a removal.
func parseAptSimulation(stdout []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(stdout), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.Split(f[1], ":")[0]
		switch f[0] {
		case "Inst":
			for _, w := range f[2:] {
				if strings.HasPrefix(w, "(") {
					out[name] = strings.TrimPrefix(w, "(")
					break
				}
			}
		case "Remv", "Purg":
			out[name] = ""
		}
	}
	return out
}

// rpm: what is installed, for dnf, yum and zypper alike.
const rpmFormat = "%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n"

func rpmQuery(root string, ns []string) cmd {
	return cmd{argv: withRoot("--root", root, append([]string{"rpm", "-q", "--qf", rpmFormat, "--"}, ns...)...)}
}

func rpmList(root, _ string) cmd {
	return cmd{argv: withRoot("--root", root, "rpm", "-qa", "--qf", rpmFormat)}
}

func parseTabbedQuery(stdout []byte, _ []string) (map[string]string, error) {
	return parseTabbed(stdout), nil
}
func parseTabbedList(stdout []byte) (map[string]string, error) { return parseTabbed(stdout), nil }

// rpmFamily is dnf or yum: -y, --installroot, NAME-VERSION pins,
// repoquery for candidates.
func rpmFamily(bin string) *manager {
	run := func(root string, args ...string) cmd {
		argv := []string{bin, "-y", "-q"}
		if root != "" {
			argv = append(argv, "--installroot", root)
		}
		return cmd{argv: append(argv, args...)}
	}
	return &manager{
		name: bin, binary: bin, hasRoot: true,
		refresh:    func(root string) cmd { return run(root, "makecache") },
		query:      rpmQuery,
		parseQuery: parseTabbedQuery,
		candidates: func(root string, ns []string) cmd {
			return run(root, append([]string{"repoquery", "--latest-limit", "1", "--qf",
				"%{name}\t%{epoch}:%{version}-%{release}", "--"}, ns...)...)
		},
		parseCandidates: func(stdout []byte, _ []string) map[string]string {
			out := parseTabbed(stdout)
			for n, v := range out {
				out[n] = strings.TrimPrefix(v, "0:") // rpm's format leaves epoch 0 out
			}
			return out
		},
		list:      rpmList,
		parseList: parseTabbedList,
		install: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"install", "--"}, pinned(pkgs, "-")...)...)
		},
		remove: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"remove", "--"}, names(pkgs)...)...)
		},
		upgrade: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"upgrade", "--"}, names(pkgs)...)...)
		},
		// --assumeno: resolve, print the transaction, answer no (exit 1,
		// "Operation aborted."); without -q, which hides the transaction.
		simulate: func(c cmd) cmd {
			return cmd{env: c.env, argv: append([]string{c.argv[0], "--assumeno"}, c.argv[3:]...)}
		},
		parseSimulation: func(o output, _ bool) (map[string]string, error) {
			if o.code != 0 && !bytes.Contains(o.stderr, []byte("Operation aborted")) {
				return nil, o.failed()
			}
			return parseDnfTransaction(o.stdout), nil
		},
		// dnf and yum wait for their lock without end: the job's deadline
		// stops them.
		recovery: bin + " history, rpm -Va",
	}
}

// parseDnfTransaction reads the transaction table dnf and yum print
// before asking: sections "Installing:", "Upgrading:", "Downgrading:",
// "Reinstalling:", "Removing:" (and their "... dependencies:" kin) with
// rows "NAME ARCH VERSION REPO SIZE"; a long name stands alone on its
// row, the rest on the next.
func parseDnfTransaction(stdout []byte) map[string]string {
	out := map[string]string{}
	section, pending := "", ""
	for _, line := range strings.Split(string(stdout), "\n") {
		if line == "" || line[0] != ' ' {
			section, pending = "", ""
			for _, s := range []string{"Installing", "Upgrading", "Downgrading", "Reinstalling", "Removing"} {
				if strings.HasPrefix(line, s) && strings.HasSuffix(line, ":") {
					section = s
				}
			}
			continue
		}
		if section == "" {
			continue
		}
		f := strings.Fields(line)
		if pending != "" {
			f, pending = append([]string{pending}, f...), ""
		}
		switch {
		case len(f) == 1:
			pending = f[0]
		case len(f) >= 4 && f[0] != "replacing":
			if section == "Removing" {
				out[f[0]] = ""
			} else {
				out[f[0]] = f[2]
			}
		}
	}
	return out
}

// zypper: --non-interactive, --root, NAME=VERSION pins.
var zypper = func() *manager {
	run := func(root string, args ...string) cmd {
		argv := []string{"zypper", "--non-interactive", "--quiet"}
		if root != "" {
			argv = append(argv, "--root", root)
		}
		return cmd{env: []string{"ZYPP_LOCK_TIMEOUT=" + lockWait}, argv: append(argv, args...)}
	}
	return &manager{
		name: model.PkgZypper, binary: "zypper", hasRoot: true,
		refresh:    func(root string) cmd { return run(root, "refresh") },
		query:      rpmQuery,
		parseQuery: parseTabbedQuery,
		candidates: func(root string, ns []string) cmd {
			return run(root, append([]string{"info", "--"}, ns...)...)
		},
		parseCandidates: parseKeyed,
		list:            rpmList,
		parseList:       parseTabbedList,
		install: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"install", "--oldpackage", "--"}, pinned(pkgs, "=")...)...)
		},
		remove: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"remove", "--"}, names(pkgs)...)...)
		},
		upgrade: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"update", "--"}, names(pkgs)...)...)
		},
		// --dry-run with the summary as XML (--xmlout in place of --quiet).
		simulate: func(c cmd) cmd {
			argv := append([]string{}, c.argv...)
			argv[2] = "--xmlout"
			return cmd{env: c.env, argv: insert(argv, after(argv, "install", "remove", "update"), "--dry-run")}
		},
		parseSimulation: parseZypperSummary,
		lockHeld:        []string{"System management is locked"},
		recovery:        "zypper verify",
	}
}()

// zypperSummary is what zypper --xmlout prints of a transaction: groups
// of solvables (to-install, to-upgrade, to-downgrade, to-reinstall,
// to-remove, ...), and messages.
type zypperSummary struct {
	Summary struct {
		Groups []struct {
			XMLName   xml.Name
			Solvables []struct {
				Name    string `xml:"name,attr"`
				Edition string `xml:"edition,attr"`
			} `xml:"solvable"`
		} `xml:",any"`
	} `xml:"install-summary"`
	Messages []struct {
		Type string `xml:"type,attr"`
		Text string `xml:",chardata"`
	} `xml:"message"`
}

// parseZypperSummary reads zypper --xmlout ... --dry-run.
func parseZypperSummary(o output, _ bool) (map[string]string, error) {
	var sum zypperSummary
	if err := xml.Unmarshal(o.stdout, &sum); err != nil && o.code == 0 {
		return nil, fmt.Errorf("read zypper's summary: %w", err)
	}
	if o.code != 0 {
		var errs []string
		for _, m := range sum.Messages {
			if m.Type == "error" {
				errs = append(errs, strings.TrimSpace(m.Text))
			}
		}
		if len(errs) > 0 {
			return nil, fmt.Errorf("exit %d: %s", o.code, lastLines([]byte(strings.Join(errs, "\n")), 3))
		}
		return nil, o.failed()
	}
	out := map[string]string{}
	for _, g := range sum.Summary.Groups {
		for _, sv := range g.Solvables {
			if g.XMLName.Local == "to-remove" {
				out[sv.Name] = ""
			} else {
				out[sv.Name] = sv.Edition
			}
		}
	}
	return out, nil
}

// pacman: -Q for what is installed, -Si for candidates, --noconfirm;
// pacman cannot install a given version from its repositories. With an
// install root, pacman reads that system's own pacman.conf. pacman does
// not wait for its lock (a db.lck file): felix waits for the file to go,
// up to the job's deadline, before each change.
var pacman = func() *manager {
	args := func(root string, args ...string) []string {
		argv := []string{"pacman", "--noconfirm"}
		if root != "" {
			argv = append(argv, "--root", root, "--config", path.Join(root, "etc/pacman.conf"))
		}
		return append(argv, args...)
	}
	run := func(root string, a ...string) cmd { return cmd{argv: args(root, a...)} }
	change := func(root string, a ...string) cmd {
		lock := path.Join("/", root, "var/lib/pacman/db.lck")
		return cmd{argv: append([]string{"sh", "-c", lockWaitScript, "sh", lock, lockWait}, args(root, a...)...)}
	}
	return &manager{
		name: model.PkgPacman, binary: "pacman", hasRoot: true, noPins: true,
		refresh: func(root string) cmd { return change(root, "-Sy") },
		query: func(root string, ns []string) cmd {
			return run(root, append([]string{"-Q", "--"}, ns...)...)
		},
		parseQuery: func(stdout []byte, _ []string) (map[string]string, error) { return parseSpaced(stdout), nil },
		candidates: func(root string, ns []string) cmd {
			return run(root, append([]string{"-Si", "--"}, ns...)...)
		},
		parseCandidates: parseKeyed,
		list:            func(root, _ string) cmd { return run(root, "-Q") },
		parseList:       func(stdout []byte) (map[string]string, error) { return parseSpaced(stdout), nil },
		install: func(root string, pkgs []model.Pkg) cmd {
			return change(root, append([]string{"-S", "--needed", "--"}, names(pkgs)...)...)
		},
		remove: func(root string, pkgs []model.Pkg) cmd {
			return change(root, append([]string{"-R", "--"}, names(pkgs)...)...)
		},
		upgrade: func(root string, pkgs []model.Pkg) cmd {
			if len(pkgs) == 0 {
				return change(root, "-Su")
			}
			return change(root, append([]string{"-S", "--"}, names(pkgs)...)...)
		},
		// --print lists what the operation would touch, in a format felix
		// sets, and changes nothing.
		simulate: func(c cmd) cmd {
			i := after(c.argv, "-S", "-R", "-Su")
			return cmd{env: c.env, argv: insert(c.argv[6:], i-6, "--print", "--print-format", "%n %v")}
		},
		parseSimulation: func(o output, remove bool) (map[string]string, error) {
			if o.code != 0 {
				return nil, o.failed()
			}
			out := parseSpaced(o.stdout)
			if remove {
				for n := range out {
					out[n] = ""
				}
			}
			return out, nil
		},
		lockHeld: []string{"lock database"},
		recovery: "remove a stale db.lck, then pacman -Dk",
	}
}()

// lockWaitScript waits while the lock file $1 exists, at most $2 seconds,
// then runs the rest of its arguments: a fixed script, the words as
// arguments.
const lockWaitScript = `l=$1 w=$2; shift 2; while [ -e "$l" ] && [ "$w" -gt 0 ]; do sleep 1; w=$((w-1)); done; exec "$@"`

// parseSpaced reads "NAME VERSION" lines (pacman -Q).
func parseSpaced(stdout []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(stdout), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			out[f[0]] = f[1]
		}
	}
	return out
}

// parseKeyed reads "Key : Value" blocks (pacman -Si, zypper info): each
// "Name" with the first "Version" after it.
func parseKeyed(stdout []byte, _ []string) map[string]string {
	out := map[string]string{}
	name := ""
	for _, line := range strings.Split(string(stdout), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Name":
			name = strings.TrimSpace(v)
		case "Version":
			if name != "" {
				if _, seen := out[name]; !seen {
					out[name] = strings.TrimSpace(v)
				}
			}
		}
	}
	return out
}

// apk: apk info -v prints NAME-VERSION-rN; --root; NAME=VERSION pins.
var apk = func() *manager {
	run := func(root string, args ...string) cmd {
		argv := []string{"apk", "--no-progress", "--wait", lockWait}
		if root != "" {
			argv = append(argv, "--root", root)
		}
		return cmd{argv: append(argv, args...)}
	}
	return &manager{
		name: model.PkgApk, binary: "apk", hasRoot: true,
		refresh: func(root string) cmd { return run(root, "update") },
		query: func(root string, ns []string) cmd {
			return run(root, append([]string{"info", "-v", "--"}, ns...)...)
		},
		parseQuery: func(stdout []byte, ns []string) (map[string]string, error) { return parseApkNamed(stdout, ns), nil },
		candidates: func(root string, ns []string) cmd {
			return run(root, append([]string{"policy", "--"}, ns...)...)
		},
		parseCandidates: parseApkPolicy,
		list:            func(root, _ string) cmd { return run(root, "info", "-v") },
		parseList:       func(stdout []byte) (map[string]string, error) { return parseApkList(stdout), nil },
		install: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"add", "--"}, pinned(pkgs, "=")...)...)
		},
		remove: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"del", "--"}, names(pkgs)...)...)
		},
		upgrade: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"upgrade", "--"}, names(pkgs)...)...)
		},
		simulate: func(c cmd) cmd { return cmd{env: c.env, argv: insert(c.argv, 1, "--simulate")} },
		parseSimulation: func(o output, _ bool) (map[string]string, error) {
			if o.code != 0 {
				return nil, o.failed()
			}
			return parseApkSimulation(o.stdout), nil
		},
		lockHeld: []string{"nable to lock database"},
		recovery: "apk fix",
	}
}()

// parseApkSimulation reads apk --simulate: "(1/2) Installing NAME (V)",
// "Upgrading|Downgrading|Replacing NAME (OLD -> NEW)", "Purging NAME (V)".
// A name may carry a repository tag (NAME@testing).
func parseApkSimulation(stdout []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(stdout), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "(") {
			continue
		}
		name, _, _ := strings.Cut(f[2], "@")
		v := strings.Trim(f[len(f)-1], "()")
		switch f[1] {
		case "Installing", "Upgrading", "Downgrading", "Replacing", "Reinstalling":
			out[name] = v
		case "Purging":
			out[name] = ""
		}
	}
	return out
}

// parseApkNamed reads NAME-VERSION lines for known names.
func parseApkNamed(stdout []byte, ns []string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(stdout)), "\n") {
		for _, n := range ns {
			if v, ok := strings.CutPrefix(line, n+"-"); ok && v != "" && v[0] >= '0' && v[0] <= '9' {
				out[n] = v
			}
		}
	}
	return out
}

// parseApkList reads NAME-VERSION-rN lines: the version is the last two
// dash-separated parts.
func parseApkList(stdout []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(stdout), "\n") {
		line = strings.TrimSpace(line)
		i := strings.LastIndex(line, "-")
		if i <= 0 {
			continue
		}
		j := strings.LastIndex(line[:i], "-")
		if j <= 0 {
			continue
		}
		out[line[:j]] = line[j+1:]
	}
	return out
}

// parseApkPolicy reads apk policy: "NAME policy:" then "  VERSION:" lines;
// the first version listed is the candidate.
func parseApkPolicy(stdout []byte, _ []string) map[string]string {
	out := map[string]string{}
	name := ""
	for _, line := range strings.Split(string(stdout), "\n") {
		if n, ok := strings.CutSuffix(line, " policy:"); ok {
			name = n
			continue
		}
		t := strings.TrimSpace(line)
		if name != "" && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "    ") && strings.HasSuffix(t, ":") {
			if _, seen := out[name]; !seen {
				out[name] = strings.TrimSuffix(t, ":")
			}
		}
	}
	return out
}
