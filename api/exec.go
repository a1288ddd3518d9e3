package api

import (
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/jobs"
)

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// spec validates an exec request into a job spec.
func (s *Server) spec(req wire.ExecRequest) (jobs.Spec, error) {
	switch req.CmdType {
	case "", "line":
	case "script", "file":
		return jobs.Spec{}, badRequestf("cmd_type %q is not supported by this master yet; use \"line\"", req.CmdType)
	default:
		return jobs.Spec{}, badRequestf("cmd_type %q: want \"line\"", req.CmdType)
	}
	if req.File != "" {
		return jobs.Spec{}, badRequestf("file is only for cmd_type script or file, which this master does not support yet")
	}
	if req.CallbackURL != "" {
		return jobs.Spec{}, badRequestf("callback_url: callbacks are not supported by this master yet; use the synchronous answer")
	}
	if strings.TrimSpace(req.CmdLine) == "" {
		return jobs.Spec{}, badRequestf("cmd_line is empty")
	}
	if !utf8.ValidString(req.CmdLine) || strings.ContainsRune(req.CmdLine, 0) {
		return jobs.Spec{}, badRequestf("cmd_line must be UTF-8 text without NUL")
	}
	if len(req.ID) > 256 || !utf8.ValidString(req.ID) {
		return jobs.Spec{}, badRequestf("id must be UTF-8 of at most 256 bytes")
	}
	targets := append([]string(nil), req.Targets...)
	if req.MinionIP != "" {
		if net.ParseIP(req.MinionIP) == nil {
			return jobs.Spec{}, badRequestf("minion_ip %q is not an IP address", req.MinionIP)
		}
		targets = append(targets, req.MinionIP)
	}
	if len(targets) == 0 {
		return jobs.Spec{}, badRequestf("no targets: give targets (ids, globs, IPs) or minion_ip")
	}
	timeout := s.Config.DefaultTimeout
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil || d <= 0 {
			return jobs.Spec{}, badRequestf("timeout %q: want a positive duration such as 30s", req.Timeout)
		}
		timeout = d
	}
	if s.Config.MaxTimeout > 0 && timeout > s.Config.MaxTimeout {
		return jobs.Spec{}, badRequestf("timeout %s is over the master's limit of %s", timeout, s.Config.MaxTimeout)
	}
	var env []string
	for k, v := range req.Env {
		if !envKey.MatchString(k) {
			return jobs.Spec{}, badRequestf("env: %q is not a valid variable name", k)
		}
		if strings.ContainsRune(v, 0) {
			return jobs.Spec{}, badRequestf("env: value of %s contains NUL", k)
		}
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	if strings.ContainsRune(req.Cwd, 0) || (req.Cwd != "" && !strings.HasPrefix(req.Cwd, "/")) {
		return jobs.Spec{}, badRequestf("cwd %q: want an absolute path", req.Cwd)
	}
	return jobs.Spec{
		ClientID: req.ID,
		CmdType:  "line",
		Command:  exec.Command{Line: req.CmdLine, Env: env, Dir: req.Cwd, Timeout: timeout},
		Targets:  targets,
	}, nil
}

func (s *Server) exec(c *gin.Context) {
	var req wire.ExecRequest
	if err := decode(c, &req); err != nil {
		s.abort(c, err)
		return
	}
	spec, err := s.spec(req)
	if err != nil {
		s.abort(c, err)
		return
	}
	job, results, err := s.Jobs.Run(c.Request.Context(), spec)
	if err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, jobResponse(job, results))
}

func (s *Server) getJob(c *gin.Context) {
	job, results, err := s.Store.Job(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, jobResponse(job, results))
}

func jobResponse(j inventory.Job, rs []exec.Result) wire.Job {
	out := wire.Job{JobID: j.ID, ID: j.ClientID, CmdLine: j.CmdLine, CmdType: j.CmdType, Targets: j.Targets,
		State: j.State, CreatedAt: j.CreatedAt, FinishedAt: j.FinishedAt, Summary: map[string]int{},
		Results: make([]wire.HostResult, 0, len(rs))}
	for _, r := range rs {
		out.Summary[string(r.State)]++
		out.Results = append(out.Results, wire.HostResult{Host: r.Host, Address: r.Addr, State: string(r.State),
			ExitCode: r.ExitCode, Signal: r.Signal, Stdout: string(r.Stdout), Stderr: string(r.Stderr),
			Truncated: r.Truncated, Error: r.Error, Transport: r.Transport, StartedAt: r.StartedAt,
			FinishedAt: r.FinishedAt, DurationMS: r.FinishedAt.Sub(r.StartedAt).Milliseconds()})
	}
	return out
}
