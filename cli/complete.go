package cli

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// completeTimeout bounds what a completion asks the master: a shell waits
// for it, so an unreachable master yields nothing soon.
const completeTimeout = 2 * time.Second

// completeFunc completes a command's positional arguments.
type completeFunc func(cl completer, args []string, toComplete string) ([]string, cobra.ShellCompDirective)

// lister fetches candidates from the master, each "value\tdescription".
type lister func(ctx context.Context, c *client) ([]string, error)

// completer reaches the master for a completion with the connection
// settings of the command line being completed.
type completer struct {
	ctx context.Context
	d   *describeErr
}

// complete is the completer of cmd, whose flags cobra has parsed.
func (t *tree) complete(cmd *cobra.Command) completer {
	return completer{ctx: t.ctx, d: t.describe(cmd)}
}

// list asks the master through l; any failure is no candidates: a
// completion says nothing rather than print an error into the shell.
func (cl completer) list(l lister) []string {
	if cl.d == nil {
		return nil
	}
	if cl.d.o.resolve(cl.d.fs) != nil {
		return nil
	}
	c, err := newClient(*cl.d.o)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(cl.ctx, completeTimeout)
	defer cancel()
	out, err := l(ctx, c)
	if err != nil {
		return nil
	}
	return out
}

// matching keeps the candidates that start with prefix and are not in skip.
func matching(cands []string, prefix string, skip []string) []string {
	var out []string
	for _, c := range cands {
		v, _, _ := strings.Cut(c, "\t")
		if strings.HasPrefix(v, prefix) && !slices.Contains(skip, v) {
			out = append(out, c)
		}
	}
	return out
}

// firstArg completes the first positional argument from l.
func firstArg(l lister) completeFunc {
	return func(cl completer, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return matching(cl.list(l), toComplete, nil), cobra.ShellCompDirectiveNoFileComp
	}
}

// eachArg completes every positional argument from l, once each.
func eachArg(l lister) completeFunc {
	return func(cl completer, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return matching(cl.list(l), toComplete, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// jobThenHost completes a job id, then a host of that job.
func jobThenHost(cl completer, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return matching(cl.list(listIDs("jobs")), toComplete, nil), cobra.ShellCompDirectiveNoFileComp
	case 1:
		hosts := cl.list(func(ctx context.Context, c *client) ([]string, error) {
			var job wire.Job
			if err := c.do(ctx, "GET", jobPath(args[0]), nil, &job); err != nil {
				return nil, err
			}
			out := make([]string, 0, len(job.Results))
			for _, r := range job.Results { // the first page's
				out = append(out, fmt.Sprintf("%s\t%s", r.Host, r.State))
			}
			return out, nil
		})
		return matching(hosts, toComplete, nil), cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeTargets completes the last comma-separated word of -t with the
// ids of accepted minions and agentless hosts.
func completeTargets(cl completer, toComplete string) ([]string, cobra.ShellCompDirective) {
	head, word := "", toComplete
	if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
		head, word = toComplete[:i+1], toComplete[i+1:]
	}
	cands := matching(cl.list(listIDs("targets")), word, strings.Split(head, ","))
	for i := range cands {
		cands[i] = head + cands[i]
	}
	return cands, cobra.ShellCompDirectiveNoFileComp
}

// listIDs lists ids from the master: "minions" (all), "pending" (minions
// whose key is not accepted), "hosts" (agentless), "targets" (accepted
// minions and agentless hosts) or "jobs" (the latest).
func listIDs(kind string) lister {
	return func(ctx context.Context, c *client) ([]string, error) {
		var out []string
		if kind == "jobs" {
			var list wire.JobList
			if err := c.do(ctx, "GET", "/api/v1/jobs?"+url.Values{"limit": {"100"}}.Encode(), nil, &list); err != nil {
				return nil, err
			}
			for _, j := range list.Jobs {
				out = append(out, fmt.Sprintf("%s\t%s: %s", j.JobID, j.State, oneLine(j.CmdLine)))
			}
			return out, nil
		}
		if kind != "hosts" {
			var list wire.MinionList
			if err := c.do(ctx, "GET", "/api/v1/minions", nil, &list); err != nil {
				return nil, err
			}
			for _, m := range list.Minions {
				accepted := m.State == model.KeyAccepted
				if kind == "minions" || (kind == "pending" && !accepted) || (kind == "targets" && accepted) {
					out = append(out, fmt.Sprintf("%s\tminion, %s", m.ID, m.State))
				}
			}
		}
		if kind == "hosts" || kind == "targets" {
			var list wire.HostList
			if err := c.do(ctx, "GET", "/api/v1/hosts", nil, &list); err != nil {
				if kind == "targets" {
					return out, nil // the minions at least
				}
				return nil, err
			}
			for _, h := range list.Hosts {
				out = append(out, h.ID+"\tagentless host")
			}
		}
		return out, nil
	}
}

// oneLine is a command line's first line, cut short, shown in a completion.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > 40 {
		s = string(r[:40]) + "…"
	}
	return visible(s)
}
