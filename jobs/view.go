package jobs

import (
	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/inventory"
)

// View converts a stored job and its results to the API's shape; callbacks
// carry the same, so a receiver sees what GET /api/v1/jobs/{id} returns.
func View(j inventory.Job, rs []exec.Result) wire.Job {
	out := wire.Job{JobID: j.ID, ID: j.ClientID, CmdLine: j.CmdLine, CmdType: j.CmdType, Targets: j.Targets,
		State: j.State, CreatedAt: j.CreatedAt, Total: j.Total, Summary: map[string]int{}}
	if !j.FinishedAt.IsZero() {
		fin := j.FinishedAt
		out.FinishedAt = &fin
	}
	if rs != nil {
		out.Results = make([]wire.HostResult, 0, len(rs))
	}
	for _, r := range rs {
		out.Summary[string(r.State)]++
		hr := wire.HostResult{Host: r.Host, Address: r.Addr, State: string(r.State),
			ExitCode: r.ExitCode, Signal: r.Signal, Stdout: string(r.Stdout), Stderr: string(r.Stderr),
			Truncated: r.Truncated, Error: r.Error, Transport: r.Transport, StartedAt: r.StartedAt,
			FinishedAt: r.FinishedAt}
		if f := r.Files; f != nil {
			hr.Files = &wire.FileReport{Changed: f.Changed, Unchanged: f.Unchanged, Size: f.Size, SHA256: f.SHA256}
		}
		if !r.StartedAt.IsZero() && !r.FinishedAt.IsZero() {
			hr.DurationMS = r.FinishedAt.Sub(r.StartedAt).Milliseconds()
		}
		out.Results = append(out.Results, hr)
	}
	return out
}
