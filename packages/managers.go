package packages

import (
	"bufio"
	"bytes"
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
	// simulate turns a change into the manager's own simulation; nil when
	// felix plans a dry run from candidate versions instead.
	simulate func(c cmd) cmd
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
	simulate: func(c cmd) cmd {
		argv := append([]string{c.argv[0], "-s"}, c.argv[1:]...)
		return cmd{env: c.env, argv: argv}
	},
}

func aptGet(args ...string) cmd {
	return cmd{env: aptEnv, argv: append([]string{"apt-get", "-q", "-y", "-o", "DPkg::Lock::Timeout=" + lockWait,
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
	}
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
			return run(root, append([]string{"--xmlout", "info", "--"}, ns...)...)
		},
		parseCandidates: parseZypperInfo,
		list:            rpmList,
		parseList:       parseTabbedList,
		install: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"install", "--"}, pinned(pkgs, "=")...)...)
		},
		remove: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"remove", "--"}, names(pkgs)...)...)
		},
		upgrade: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"update", "--"}, names(pkgs)...)...)
		},
	}
}()

// parseZypperInfo reads "Information for package NAME:" blocks' "Version".
func parseZypperInfo(stdout []byte, _ []string) map[string]string {
	out := map[string]string{}
	name := ""
	for _, line := range strings.Split(string(stdout), "\n") {
		line = strings.TrimSpace(line)
		if n, ok := strings.CutPrefix(line, "Information for package "); ok {
			name = strings.TrimSuffix(n, ":")
			continue
		}
		if v, ok := strings.CutPrefix(line, "Version"); ok && name != "" {
			if _, val, ok := strings.Cut(v, ":"); ok {
				out[name] = strings.TrimSpace(val)
			}
		}
	}
	return out
}

// pacman: -Q for what is installed, -Si for candidates, --noconfirm;
// pacman cannot install a given version from its repositories.
var pacman = func() *manager {
	run := func(root string, args ...string) cmd {
		argv := []string{"pacman", "--noconfirm"}
		if root != "" {
			argv = append(argv, "--root", root)
		}
		return cmd{argv: append(argv, args...)}
	}
	return &manager{
		name: model.PkgPacman, binary: "pacman", hasRoot: true,
		refresh: func(root string) cmd { return run(root, "-Sy") },
		query: func(root string, ns []string) cmd {
			return run(root, append([]string{"-Q", "--"}, ns...)...)
		},
		parseQuery: func(stdout []byte, _ []string) (map[string]string, error) { return parseSpaced(stdout), nil },
		candidates: func(root string, ns []string) cmd {
			return run(root, append([]string{"-Si", "--"}, ns...)...)
		},
		parseCandidates: parsePacmanInfo,
		list:            func(root, _ string) cmd { return run(root, "-Q") },
		parseList:       func(stdout []byte) (map[string]string, error) { return parseSpaced(stdout), nil },
		install: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"-S", "--needed", "--"}, names(pkgs)...)...)
		},
		remove: func(root string, pkgs []model.Pkg) cmd {
			return run(root, append([]string{"-R", "--"}, names(pkgs)...)...)
		},
		upgrade: func(root string, pkgs []model.Pkg) cmd {
			if len(pkgs) == 0 {
				return run(root, "-Su")
			}
			return run(root, append([]string{"-S", "--"}, names(pkgs)...)...)
		},
	}
}()

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

// parsePacmanInfo reads pacman -Si: "Name : N" then "Version : V".
func parsePacmanInfo(stdout []byte, _ []string) map[string]string {
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
	}
}()

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
