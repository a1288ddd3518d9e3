package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// SlackBody is the JSON a finished job posts to a Slack incoming webhook:
// {"text": ...} with the job folded (slackText). The master hands it to the
// notifier, like CallbackBody.
func SlackBody(job inventory.Job, results []model.Result) ([]byte, error) {
	return json.Marshal(struct {
		Text string `json:"text"`
	}{slackText(job, results)})
}

// Limits of a Slack summary, in bytes of text.
const (
	slackMax       = 3000 // the whole message
	slackGroupsEnd = 2000 // header and groups end by here; failures fill the rest
	slackExcerpt   = 300  // output shown per group
	slackNames     = 8    // host names shown per group
	slackLine      = 160  // one line of output, an error, the command
)

// stateLess orders states in counts and groups as model.FinalStates does:
// the good news first.
func stateLess(a, b string) bool {
	ra, rb := model.State(a).Rank(), model.State(b).Rank()
	if ra != rb {
		return ra < rb
	}
	return a < b
}

// group is hosts that ended alike: same state, exit code and output.
type group struct {
	state  string
	exit   int
	output string // the stream shown: see slackText
	pkgs   string // a package job's report, shown instead of output
	hosts  []string
}

// slackText folds a job into a Slack message: a header with the job, the
// requester's id, state and per-state counts, the command, hosts grouped
// by identical outcome with an output excerpt, and the failures. It stays
// under slackMax bytes however many hosts the job had.
func slackText(job inventory.Job, results []model.Result) string {
	counts := map[string]int{}
	groups := map[string]*group{}
	var failures []model.Result
	for _, r := range results {
		st := string(r.State)
		counts[st]++
		pkgs := pkgText(r.Packages)
		if r.Apply != nil {
			pkgs = applyText(r.Apply)
		}
		key := st + "\x00" + strconv.Itoa(r.ExitCode) + "\x00" + string(r.Stdout) + "\x00" + string(r.Stderr)
		if r.Packages != nil || r.Apply != nil {
			// Package and apply jobs fold hosts by their reports: the
			// managers' output differs in timings and download sizes.
			key = st + "\x00" + strconv.Itoa(r.ExitCode) + "\x00" + pkgs
		}
		g := groups[key]
		if g == nil {
			// The telling stream: stdout of a success, stderr of a failure.
			out, alt := r.Stdout, r.Stderr
			if r.State != model.StateOK {
				out, alt = alt, out
			}
			if len(bytes.TrimSpace(out)) == 0 {
				out = alt
			}
			g = &group{state: st, exit: r.ExitCode, output: string(out), pkgs: pkgs}
			groups[key] = g
		}
		g.hosts = append(g.hosts, r.Host)
		if r.State != model.StateOK {
			failures = append(failures, r)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "*felix job* `%s`", code(job.ID, 80))
	if job.ClientID != "" {
		fmt.Fprintf(&b, " (id `%s`)", code(job.ClientID, 80))
	}
	fmt.Fprintf(&b, " *%s*: %d %s", esc(string(job.State)), len(results), plural(len(results), "host", "hosts"))
	states := make([]string, 0, len(counts))
	for st := range counts {
		states = append(states, st)
	}
	sort.Slice(states, func(i, j int) bool { return stateLess(states[i], states[j]) })
	for i, st := range states {
		sep := ", "
		if i == 0 {
			sep = " — "
		}
		fmt.Fprintf(&b, "%s%d %s", sep, counts[st], esc(st))
	}
	fmt.Fprintf(&b, "\n`%s`", code(job.CmdLine, slackLine))
	if job.CmdType != "" && job.CmdType != model.CmdLine {
		fmt.Fprintf(&b, " (%s)", esc(job.CmdType))
	}
	b.WriteString("\n")

	gs := make([]*group, 0, len(groups))
	for _, g := range groups {
		sort.Strings(g.hosts)
		gs = append(gs, g)
	}
	sort.Slice(gs, func(i, j int) bool {
		a, c := gs[i], gs[j]
		if len(a.hosts) != len(c.hosts) {
			return len(a.hosts) > len(c.hosts)
		}
		if a.state != c.state {
			return stateLess(a.state, c.state)
		}
		return a.hosts[0] < c.hosts[0]
	})
	for i, g := range gs {
		s := groupText(g)
		if b.Len()+len(s) > slackGroupsEnd {
			fmt.Fprintf(&b, "_(+%d more %s)_\n", len(gs)-i, plural(len(gs)-i, "group", "groups"))
			break
		}
		b.WriteString(s)
	}

	if len(failures) > 0 {
		sort.Slice(failures, func(i, j int) bool { return failures[i].Host < failures[j].Host })
		fmt.Fprintf(&b, "*Failures (%d)*\n", len(failures))
		for i, r := range failures {
			s := failureText(r)
			if b.Len()+len(s) > slackMax-40 {
				fmt.Fprintf(&b, "_(+%d more)_\n", len(failures)-i)
				break
			}
			b.WriteString(s)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func groupText(g *group) string {
	var b strings.Builder
	names := make([]string, 0, slackNames)
	for _, h := range g.hosts[:min(len(g.hosts), slackNames)] {
		names = append(names, esc(clip(h, 64)))
	}
	fmt.Fprintf(&b, "• *%d %s* %s", len(g.hosts), plural(len(g.hosts), "host", "hosts"), esc(g.state))
	if g.state == string(model.StateOK) || g.state == string(model.StateFailed) {
		fmt.Fprintf(&b, " (exit %d)", g.exit)
	}
	b.WriteString(": " + strings.Join(names, ", "))
	if more := len(g.hosts) - len(names); more > 0 {
		fmt.Fprintf(&b, ", … (+%d more)", more)
	}
	b.WriteString("\n")
	if ex := excerpt(g.output); g.pkgs != "" {
		b.WriteString("```\n" + excerpt(g.pkgs) + "\n```\n")
	} else if ex != "" {
		b.WriteString("```\n" + ex + "\n```\n")
	}
	return b.String()
}

// pkgText is a package report, a line per package: "nginx 1.22.1-9 →
// 1.24.0-1 changed" ("-" for not installed), the manager's reason for a
// failed one; "" for no report.
func pkgText(rep *model.PkgReport) string {
	if rep == nil {
		return ""
	}
	var b strings.Builder
	if rep.DryRun {
		b.WriteString("(dry run)\n")
	}
	for _, p := range rep.Packages {
		b.WriteString(p.Name + " " + cmp.Or(p.Before, "-") + " → " + cmp.Or(p.After, "-") + " " + p.State)
		if p.Error != "" {
			b.WriteString(": " + oneLine(p.Error))
		}
		b.WriteString("\n")
	}
	if len(rep.Packages) == 0 {
		b.WriteString("(no packages)\n")
	}
	return b.String()
}

// applyText is an apply report as a Slack summary shows it: the counts,
// and each resource that did not stay unchanged.
func applyText(rep *model.ApplyReport) string {
	var b strings.Builder
	if rep.DryRun {
		b.WriteString("(dry run)\n")
	}
	fmt.Fprintf(&b, "%d changed, %d unchanged, %d failed, %d skipped\n", rep.Changed, rep.Unchanged, rep.Failed, rep.Skipped)
	for _, x := range rep.Resources {
		if x.State == model.ResUnchanged {
			continue
		}
		b.WriteString(x.Type + " " + x.ID + " " + x.State)
		if d := cmp.Or(x.Error, x.Detail); d != "" {
			b.WriteString(": " + oneLine(d))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func failureText(r model.Result) string {
	s := "• " + esc(clip(r.Host, 64)) + " — " + esc(string(r.State))
	if r.State == model.StateFailed && r.Error == "" {
		s += fmt.Sprintf(", exit %d", r.ExitCode)
	}
	if r.Signal != "" {
		s += ", signal " + esc(r.Signal)
	}
	if r.Error != "" {
		s += ": " + esc(clip(oneLine(r.Error), slackLine))
	}
	return s + "\n"
}

// excerpt is the first lines of out, clipped, escaped for a code block.
func excerpt(out string) string {
	out = strings.TrimSpace(strings.ToValidUTF8(out, "\uFFFD"))
	if out == "" {
		return ""
	}
	lines := strings.Split(out, "\n")
	var keep []string
	size := 0
	for i, l := range lines {
		l = clip(strings.TrimRight(l, "\r"), slackLine)
		if i == 6 || size+len(l) > slackExcerpt {
			keep = append(keep, "…")
			break
		}
		keep = append(keep, l)
		size += len(l) + 1
	}
	return esc(strings.ReplaceAll(strings.Join(keep, "\n"), "```", "'''"))
}

// esc escapes text for Slack's mrkdwn.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// code prepares s for an inline code span: one line, no backticks, clipped.
func code(s string, n int) string {
	return esc(clip(strings.ReplaceAll(oneLine(s), "`", "'"), n))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// clip cuts s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
