package ssh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
)

// Staging directories of script and file commands.
//
// A command's private directory is made below the first of these
// candidates where a file can be executed: the host's remote_tmp (else
// Config.RemoteTmp, else /tmp), then /var/tmp, then ~/.felix/tmp in the
// login user's home (made 0700). One fixed script (stageScript) tries them
// in order in a single session: it makes the directory with mktemp, runs a
// tiny probe file in it and, when the probe cannot execute (a noexec
// mount), removes the directory and goes on. The candidate that worked is
// remembered per login, settings generation and candidate list, so the
// next command goes straight there: its job directory is made without a
// probe (as cheap as a plain mktemp). Should that fail, or the command
// exit 126 (cannot execute: the host was remounted), the choice is
// forgotten and the next command probes again.
//
// When no candidate can execute, the directory of the first candidate
// that could be made is used anyway and a command line that starts by
// executing the staged file runs it through an interpreter instead: the one
// its "#!" line names, or /bin/sh for a text file without one. A binary
// file cannot be run that way: that is an error and nothing runs.
const (
	// DefaultRemoteTmp is the first staging candidate when neither the
	// host nor the Config names one.
	DefaultRemoteTmp = "/tmp"
	// homeRemoteTmp is the last candidate, in the login user's home.
	homeRemoteTmp = "~/.felix/tmp"
)

// fallbackRemoteTmp are the candidates tried after the configured one.
var fallbackRemoteTmp = []string{"/var/tmp", homeRemoteTmp}

// stageScript reads a mode ("probe" or "trust") and candidate directories
// from standard input, one a line (validated by model.ValidRemoteTmp:
// absolute, or "~/DIR" in $HOME), and tries them in order: make the
// directory (umask 077) if missing, make a private job directory in it
// with mktemp, run a probe file there (trust: no probe, "ok" at once). It
// prints "ok N DIR" for the first candidate N (from 0) whose probe ran,
// else "noexec N DIR" for the first whose job directory could be made
// (the others are removed), else nothing and exits 1. Each candidate that
// fails prints "skip N WHY" or "noexec N". Values are only expanded inside
// double quotes.
//
// It must not contain single quotes (see shellCommand).
const stageScript = `umask 077; set -f; i=-1; k=; kn=; IFS= read -r m || exit 1; ` +
	`while IFS= read -r b; do i=$((i+1)); ` +
	`case $b in "~/"*) if [ -z "$HOME" ]; then echo "skip $i no-home"; continue; fi; b=${HOME%/}/${b#??};; esac; ` +
	`if [ ! -d "$b" ] && ! mkdir -p "$b" 2>/dev/null; then echo "skip $i mkdir"; continue; fi; ` +
	`d=$(mktemp -d "${b%/}/felix-job-XXXXXX" 2>/dev/null) || { echo "skip $i mktemp"; continue; }; ` +
	`if [ "$m" = trust ]; then echo "ok $i $d"; exit 0; fi; ` +
	`p=$d/.felix-probe; printf "%s\n" "#!/bin/sh" "exit 0" >"$p" && chmod 700 "$p" && "$p" 2>/dev/null; r=$?; rm -f "$p"; ` +
	`if [ "$r" -eq 0 ]; then echo "ok $i $d"; [ -z "$k" ] || rm -rf -- "$k"; exit 0; fi; ` +
	`echo "noexec $i"; if [ -z "$k" ]; then k=$d; kn=$i; else rm -rf -- "$d"; fi; ` +
	`done; if [ -n "$k" ]; then echo "noexec $kn $k"; exit 0; fi; exit 1`

// jobDirName is the pattern of the base name mktemp makes.
const jobDirName = `/felix-job-[A-Za-z0-9]{6}$`

// safePathElem is one path element felix accepts in a job directory.
const safePathElem = `/[A-Za-z0-9_+@,:=%-][A-Za-z0-9._+@,:=%-]*`

// jobDirPattern returns what mktemp makes below candidate base (validated):
// only such a path is ever removed. For "~/DIR" the home directory is any
// clean absolute path of letters, digits and "._-+@,:=%" (no element
// starts with a dot, so none is "." or "..").
func jobDirPattern(base string) *regexp.Regexp {
	if rel, ok := strings.CutPrefix(base, "~/"); ok {
		return regexp.MustCompile(`^(` + safePathElem + `)+/` + regexp.QuoteMeta(rel) + jobDirName)
	}
	return regexp.MustCompile(`^` + regexp.QuoteMeta(strings.TrimSuffix(base, "/")) + jobDirName)
}

// stageCandidates returns the staging candidates for s in the order they
// are tried, without duplicates.
func stageCandidates(s hostSpec) []string {
	first := s.remoteTmp
	if first == "" {
		first = s.set.RemoteTmp
	}
	if first == "" {
		first = DefaultRemoteTmp
	}
	out := []string{first}
	for _, c := range fallbackRemoteTmp {
		if c != first {
			out = append(out, c)
		}
	}
	return out
}

// stageCacheMax bounds the remembered staging choices; when full, the
// cache starts afresh.
const stageCacheMax = 4096

// stageCache remembers, per login, settings generation and candidate list,
// which candidate worked (-1: none could execute).
type stageCache struct {
	mu sync.Mutex
	m  map[string]stageChoice // protected by mu
}

type stageChoice struct {
	n     int  // the candidate's index, -1 for none
	stale bool // to be probed again; n is kept to tell only of changes
}

// get returns the choice for key, unless there is none or it is stale.
func (c *stageCache) get(key string) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.m[key]
	return ch.n, ok && !ch.stale
}

// forget marks the choice for key stale: the next command probes again.
func (c *stageCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.m[key]; ok {
		ch.stale = true
		c.m[key] = ch
	}
}

// put records n for key and reports whether it differs from what was
// known, stale or not.
func (c *stageCache) put(key string, n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[key]
	if !ok && (c.m == nil || len(c.m) >= stageCacheMax) {
		c.m = make(map[string]stageChoice)
	}
	c.m[key] = stageChoice{n: n}
	return !ok || old.n != n
}

// stage is where a command's file was put.
type stage struct {
	dir    string // the job directory
	base   string // the candidate it is in
	noexec bool   // no candidate could execute: dir is in the first usable one
	// cacheKey is the stageCache entry the choice came from or went to.
	cacheKey string
}

// makeJobDir makes the private directory of a script or file command in
// the first staging candidate that can execute (see stageScript), or
// straight in the one that worked last time.
func (p *Pool) makeJobDir(ctx context.Context, s hostSpec, out model.OutputFunc) (stage, error) {
	cands := stageCandidates(s)
	// The user the stage script runs as decides what it can make and run.
	key := s.key + "\x00" + s.sudo() + "\x00" + strings.Join(cands, "\x00")
	if last, known := p.stages.get(key); known {
		trusted := cands
		if last >= 0 {
			trusted = cands[last : last+1]
		}
		st, _, err := p.stageIn(ctx, s, "trust", trusted)
		if err == nil {
			st.noexec, st.cacheKey = last < 0, key
			return st, nil
		}
		if errors.Is(err, exec.ErrUnreachable) || ctx.Err() != nil {
			return stage{}, err
		}
		p.stages.forget(key)
	}
	st, tried, err := p.stageIn(ctx, s, "probe", cands)
	if err != nil {
		return stage{}, err
	}
	last := slices.Index(cands, st.base)
	if st.noexec {
		last = -1
	}
	if p.stages.put(key, last) && (last != 0 || len(tried) > 0) {
		var msg string
		if st.noexec {
			msg = fmt.Sprintf("every staging directory is noexec (%s): scripts run through their #! interpreter from %s", strings.Join(tried, ", "), st.base)
		} else {
			msg = fmt.Sprintf("staging in %s: %s", st.base, strings.Join(tried, ", "))
		}
		p.log.Warn("ssh: "+msg, "host", s.addr, "id", s.id)
		out(model.Stderr, []byte("felix: "+msg+"\n"))
	}
	st.cacheKey = key
	return st, nil
}

// stageIn runs stageScript in mode over cands and returns the job
// directory it made and what failed before it, for messages.
func (p *Pool) stageIn(ctx context.Context, s hostSpec, mode string, cands []string) (stage, []string, error) {
	in := mode + "\n" + strings.Join(cands, "\n") + "\n"
	stdout, stderr, code, err := p.runPlainInput(ctx, s, shellCommand(stageScript, s.sudo()), false, []byte(in))
	if err != nil {
		return stage{}, nil, err
	}
	var st stage
	var tried []string
	found := false
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if len(f) < 2 {
			continue
		}
		j, err := strconv.Atoi(f[1])
		if err != nil || j < 0 || j >= len(cands) {
			continue
		}
		c := cands[j]
		switch {
		case f[0] == "skip" && len(f) == 3:
			tried = append(tried, c+" ("+f[2]+" failed)")
		case f[0] == "noexec" && len(f) == 2:
			tried = append(tried, c+" (noexec)")
		case (f[0] == "ok" || f[0] == "noexec") && len(f) == 3 && !found:
			if !jobDirPattern(c).MatchString(f[2]) {
				return stage{}, nil, fmt.Errorf("exec on %s: make a private directory in %s: the host printed %q (the command did not run)", s.id, c, f[2])
			}
			st = stage{dir: f[2], base: c, noexec: f[0] == "noexec"}
			found = true
		}
	}
	if code != 0 || !found {
		return stage{}, nil, fmt.Errorf("exec on %s: make a private directory: none of %s could be used: %s%s (the command did not run)",
			s.id, strings.Join(cands, ", "), strings.Join(tried, ", "), exitNote(code, stderr))
	}
	return st, tried, nil
}

// notExecutable is the exit status of a command its shell could not
// execute (a noexec mount among other reasons).
const notExecutable = 126

// checkExit forgets the staging choice behind st when the command could
// not execute, so the next one probes again.
func (p *Pool) checkExit(st stage, ex model.Exit) {
	if ex.Code == notExecutable && st.cacheKey != "" {
		p.stages.forget(st.cacheKey)
	}
}

// exitNote describes a failed fixed command for messages.
func exitNote(code int, stderr []byte) string {
	if code == 0 {
		return ""
	}
	if l := firstLine(stderr); l != "" {
		return fmt.Sprintf("; exit %d: %s", code, l)
	}
	return fmt.Sprintf("; exit %d", code)
}

// maxShebang bounds the "#!" line felix reads.
const maxShebang = 256

// interpreter is how a staged file runs when no candidate can execute.
type interpreter struct {
	argv   []string // the interpreter and its argument, if any
	binary bool     // not a script: it cannot be run through one
}

var (
	shebangPath = regexp.MustCompile(`^(/[A-Za-z0-9_+-][A-Za-z0-9._+-]*)+$`)
	shebangArg  = regexp.MustCompile(`^[A-Za-z0-9_+=,:%@./-]+$`)
	envName     = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9._+-]*$`)
)

// parseInterpreter reads how head, the start of a file, runs: the
// interpreter of its "#!" line (an absolute path and at most one plain
// argument; "/usr/bin/env NAME" with a plain NAME), /bin/sh for text
// without one, or binary for content with a NUL byte or an ELF header.
func parseInterpreter(head []byte) (interpreter, error) {
	rest, ok := bytes.CutPrefix(head, []byte("#!"))
	if !ok {
		if bytes.HasPrefix(head, []byte("\x7fELF")) || bytes.IndexByte(head, 0) >= 0 {
			return interpreter{binary: true}, nil
		}
		return interpreter{argv: []string{"/bin/sh"}}, nil
	}
	line, _, found := bytes.Cut(rest, []byte("\n"))
	if !found && len(head) >= maxShebang {
		return interpreter{}, fmt.Errorf("the #! line is longer than %d bytes", maxShebang)
	}
	fields := strings.Fields(strings.TrimSuffix(string(line), "\r"))
	switch {
	case len(fields) == 0:
		return interpreter{}, errors.New("the #! line names no interpreter")
	case !shebangPath.MatchString(fields[0]) || path.Clean(fields[0]) != fields[0]:
		return interpreter{}, fmt.Errorf("#! interpreter %q: want a clean absolute path of letters, digits and ._-+", fields[0])
	case len(fields) > 2:
		return interpreter{}, fmt.Errorf("#!%s: at most one argument", strings.TrimSpace(string(line)))
	case len(fields) == 2 && path.Base(fields[0]) == "env" && !envName.MatchString(fields[1]):
		return interpreter{}, fmt.Errorf("#! %s %q: want a plain program name", fields[0], fields[1])
	case len(fields) == 2 && !shebangArg.MatchString(fields[1]):
		return interpreter{}, fmt.Errorf("#! %s argument %q: want letters, digits and _+=,:%%@./-", fields[0], fields[1])
	}
	return interpreter{argv: fields}, nil
}

// readHead returns the first bytes of f, for parseInterpreter.
func readHead(f *model.File) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	head := make([]byte, maxShebang)
	n, err := io.ReadFull(rc, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return head[:n], nil
}

// shellQuote returns s as one single-quoted shell word.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// execsFile reports whether line starts by executing the staged file name
// in dir ("./NAME", "DIR/NAME", either single-quoted, then the end or a
// blank or operator), and returns the rest of the line after that word.
func execsFile(line, dir, name string) (string, bool) {
	trimmed := strings.TrimLeft(line, " \t")
	for _, w := range []string{"./" + name, dir + "/" + name, shellQuote("./" + name), shellQuote(dir + "/" + name)} {
		rest, ok := strings.CutPrefix(trimmed, w)
		if ok && (rest == "" || strings.ContainsRune(" \t\n;&|<>)", rune(rest[0]))) {
			return rest, true
		}
	}
	return "", false
}

// interpretedLine rewrites r's command line, which starts by executing the
// staged file f in dir on a host where nothing can execute, to run it
// through its interpreter. A line that does not execute the file itself
// first is left alone. The interpreter's words are checked plain words.
func interpretedLine(s hostSpec, st stage, cands []string, f *model.File, line string) (string, error) {
	rest, ok := execsFile(line, st.dir, f.Name)
	if !ok {
		return line, nil
	}
	head, err := readHead(f)
	if err != nil {
		return "", fmt.Errorf("exec on %s: open file %s: %w (the command did not run)", s.id, f.Name, err)
	}
	in, err := parseInterpreter(head)
	if err != nil {
		return "", fmt.Errorf("exec on %s: every staging directory is noexec (%s) and %s cannot run through an interpreter: %w (the command did not run)",
			s.id, strings.Join(cands, ", "), f.Name, err)
	}
	if in.binary {
		return "", fmt.Errorf("exec on %s: every staging directory is noexec (%s) and %s is a binary, not a script: it cannot run (the command did not run)",
			s.id, strings.Join(cands, ", "), f.Name)
	}
	return strings.Join(in.argv, " ") + " " + shellQuote("./"+f.Name) + rest, nil
}
