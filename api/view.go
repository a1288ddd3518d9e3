package api

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// jobView converts a stored job and its results to the API's shape;
// callbacks carry the same (CallbackBody), so a receiver sees what
// GET /api/v1/jobs/{id} returns.
func jobView(j inventory.Job, rs []model.Result) wire.Job {
	out := wire.Job{JobID: j.ID, ID: j.ClientID, CmdLine: j.CmdLine, CmdType: j.CmdType, Targets: j.Targets,
		RequestedBy: j.RequestedBy, State: j.State, CreatedAt: j.CreatedAt, Total: j.Total, Summary: map[string]int{}}
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

// Callback bounds: each host's stdout and stderr in a callback keep at most
// their last CallbackOutputCap bytes, and all hosts' output together at
// most CallbackMaxOutput bytes of JSON — a callback of ten thousand hosts
// must stay small enough to build, store in the outbox and send. Cut
// output sets the host's truncated flag; GET /api/v1/jobs/{id} has the
// stored output.
const (
	CallbackOutputCap = model.AnnouncedOutput
	CallbackMaxOutput = model.AnnouncedTotal
)

// CallbackMaxPackages bounds the package entries of all hosts' reports in
// a callback (a list on thousands of hosts): each host keeps at most its
// fair share of them (model.AnnouncedPackages), and at least 16; a cut
// report keeps its counts and sets the host's truncated flag.
// GET /api/v1/jobs/{id} has them all.
const CallbackMaxPackages = model.AnnouncedPackagesTotal

// CallbackBody is the JSON a finished job's callback_url receives: the job
// as GET /api/v1/jobs/{id} shows it, with eventID (wire.Callback), each
// host's output cut to its tail within the callback bounds. The master
// hands it to the notifier, which knows nothing of the API's shapes.
func CallbackBody(eventID string, job inventory.Job, results []model.Result) ([]byte, error) {
	cut := make([]model.Result, len(results))
	copy(cut, results)
	limit := callbackStreamCap(results)
	pkgLimit := model.AnnouncedPackages(len(results))
	for i := range cut {
		r := &cut[i]
		var cutOut, cutErr bool
		r.Stdout, cutOut = jsonTail(r.Stdout, limit)
		r.Stderr, cutErr = jsonTail(r.Stderr, limit)
		r.Truncated = r.Truncated || cutOut || cutErr
		r.CutPackages(pkgLimit)
	}
	return json.Marshal(wire.Callback{EventID: eventID, Job: jobView(job, cut)})
}

// callbackStreamCap is the most JSON bytes one stream of one host may take
// in a callback: CallbackOutputCap, or less when the hosts' output would
// otherwise pass CallbackMaxOutput — then the largest cap under which it
// fits, so hosts with little output keep all of theirs.
func callbackStreamCap(results []model.Result) int {
	sizes := make([]int, 0, 2*len(results))
	total := 0
	for _, r := range results {
		for _, b := range [][]byte{r.Stdout, r.Stderr} {
			tail, _ := jsonTail(b, CallbackOutputCap)
			n := jsonLen(tail)
			sizes = append(sizes, n)
			total += n
		}
	}
	if total <= CallbackMaxOutput {
		return CallbackOutputCap
	}
	fits := func(c int) bool {
		sum := 0
		for _, n := range sizes {
			sum += min(n, c)
		}
		return sum <= CallbackMaxOutput
	}
	lo, hi := 0, CallbackOutputCap // fits(lo), !fits(hi)
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// jsonTail returns the longest tail of b, cut at a rune boundary, whose
// JSON string encoding takes at most limit bytes, and whether it cut.
func jsonTail(b []byte, limit int) ([]byte, bool) {
	if len(b) <= limit/6 { // even all-escaped it fits
		return b, false
	}
	n, i := 0, len(b)
	for i > 0 {
		r, size := utf8.DecodeLastRune(b[:i])
		w := jsonRuneLen(r, size)
		if n+w > limit {
			break
		}
		n += w
		i -= size
	}
	return b[i:], i > 0
}

// jsonLen is how many bytes b takes in a JSON string, at most (as
// encoding/json writes it, with its HTML escaping).
func jsonLen(b []byte) int {
	n := 0
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		n += jsonRuneLen(r, size)
		b = b[size:]
	}
	return n
}

// jsonRuneLen bounds the encoded length of one rune of size bytes: six for
// what encoding/json writes as \uXXXX (controls, <, >, &, invalid UTF-8,
// U+2028 and U+2029), two for a quote or backslash, else the rune itself.
func jsonRuneLen(r rune, size int) int {
	switch {
	case r == utf8.RuneError && size == 1, r < 0x20, r == '<', r == '>', r == '&', r == 0x2028, r == 0x2029:
		return 6
	case r == '"', r == '\\':
		return 2
	}
	return size
}
