package api

import (
	"encoding/json"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// jobView converts a stored job and its results to the API's shape;
// callbacks carry the same (CallbackBody), so a receiver sees what
// GET /api/v1/jobs/{id} returns.
func jobView(j inventory.Job, rs []model.Result) wire.Job {
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
		out.Results = append(out.Results, resultView(r))
	}
	return out
}

// CallbackOutputCap bounds each host's stdout and stderr in a callback: a
// callback of a thousand hosts must stay small enough to build and send.
// Longer output keeps its last CallbackOutputCap bytes and sets truncated;
// GET /api/v1/jobs/{id} has the stored output.
const CallbackOutputCap = 64 << 10

// CallbackBody is the JSON a finished job's callback_url receives: the job
// as GET /api/v1/jobs/{id} shows it, with eventID (wire.Callback), each
// host's output cut to its last CallbackOutputCap bytes. The master hands
// it to the notifier, which knows nothing of the API's shapes.
func CallbackBody(eventID string, job inventory.Job, results []model.Result) ([]byte, error) {
	view := jobView(job, results)
	for i := range view.Results {
		r := &view.Results[i]
		if len(r.Stdout) > CallbackOutputCap || len(r.Stderr) > CallbackOutputCap {
			r.Stdout, r.Stderr, r.Truncated = tail(r.Stdout), tail(r.Stderr), true
		}
	}
	return json.Marshal(wire.Callback{EventID: eventID, Job: view})
}

func tail(s string) string {
	if len(s) <= CallbackOutputCap {
		return s
	}
	return s[len(s)-CallbackOutputCap:]
}
