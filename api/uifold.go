package api

import (
	"net/http"
	"sort"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/internal/hostset"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// GET /ui/api/jobs/{id} answers a job as the CLI prints it by default:
// hosts whose results are the same (state, exit, stdout, stderr, error)
// folded into one group headed by their compact host set, the largest
// group first. It reads the results page by page with each stream cut to
// its last uiFoldTail bytes and keeps at most uiFoldGroups groups, so a
// job of ten thousand hosts with as many outputs costs little; hosts past
// that many groups are counted in more_hosts. A host's whole output stays
// at the API's /api/v1/jobs/{id}/hosts/{host}.
const (
	uiFoldTail   = 8 << 10
	uiFoldGroups = 200
	uiFoldPage   = 1000
)

// uiFoldedJob is the body of GET /ui/api/jobs/{id}.
type uiFoldedJob struct {
	Job    wire.Job      `json:"job"` // without results; summary over all hosts
	Groups []uiFoldGroup `json:"groups"`
	// MoreHosts counts the hosts whose results fit none of the first
	// uiFoldGroups groups: the API lists them all.
	MoreHosts int `json:"more_hosts,omitempty"`
}

// uiFoldGroup is hosts with the same result.
type uiFoldGroup struct {
	HostSet   string      `json:"hostset"` // web[01-40],db[1-3]
	Count     int         `json:"count"`
	FirstHost string      `json:"first_host"` // one of them, to open its whole output
	State     model.State `json:"state"`
	Exit      string      `json:"exit"` // the exit code, the signal, or "-" when it did not run
	Stdout    string      `json:"stdout,omitempty"`
	Stderr    string      `json:"stderr,omitempty"`
	Error     string      `json:"error,omitempty"`
	Truncated bool        `json:"truncated,omitempty"` // output cut: here, or when stored
	hosts     []string
}

// uiFoldKey is what the hosts of one group share.
type uiFoldKey struct {
	state                     model.State
	exit, stdout, stderr, err string
	truncated                 bool
}

func (s *Server) uiJob(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("id")
	job, err := s.Store.JobSummary(ctx, id)
	if err != nil {
		s.abort(c, err)
		return
	}
	out := uiFoldedJob{Job: jobView(job, nil), Groups: []uiFoldGroup{}}
	out.Job.Summary = job.Summary
	groups := map[uiFoldKey]*uiFoldGroup{}
	var order []*uiFoldGroup
	page := inventory.ResultPage{Limit: uiFoldPage, Tail: uiFoldTail}
	for {
		next, err := s.Store.JobResults(ctx, id, page, func(r model.Result) error {
			k := uiFoldKey{state: r.State, exit: model.ExitText(r.ExitCode, r.Signal), stdout: string(r.Stdout), stderr: string(r.Stderr), err: r.Error, truncated: r.Truncated}
			g := groups[k]
			if g == nil {
				if len(order) >= uiFoldGroups {
					out.MoreHosts++
					return nil
				}
				g = &uiFoldGroup{FirstHost: r.Host, State: r.State, Exit: k.exit, Stdout: k.stdout, Stderr: k.stderr, Error: k.err, Truncated: k.truncated}
				groups[k] = g
				order = append(order, g)
			}
			g.hosts = append(g.hosts, r.Host)
			return nil
		})
		if err != nil {
			s.abort(c, err)
			return
		}
		if next == "" {
			break
		}
		page.After = next
	}
	sort.SliceStable(order, func(i, j int) bool { return len(order[i].hosts) > len(order[j].hosts) })
	for _, g := range order {
		g.Count, g.HostSet = len(g.hosts), hostset.Compact(g.hosts)
		out.Groups = append(out.Groups, *g)
	}
	c.JSON(http.StatusOK, out)
}
