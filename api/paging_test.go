package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// storeJob stores a finished job id straight into s, with results (and
// a pending row for each of pending), and its deliveries.
func storeJob(t *testing.T, s *inventory.Store, id string, results []model.Result, pending []string, outbox ...inventory.OutboxItem) {
	t.Helper()
	ctx := context.Background()
	var rows []model.Result
	for _, r := range results {
		rows = append(rows, model.Result{Host: r.Host, State: model.StatePending})
	}
	for _, h := range pending {
		rows = append(rows, model.Result{Host: h, State: model.StatePending})
	}
	start := time.UnixMilli(1_790_000_000_000)
	if err := s.CreateJob(ctx, inventory.Job{ID: id, ClientID: "req-" + id, CmdLine: "uname -a", CmdType: "line",
		Targets: []string{"*"}, State: model.JobRunning, CreatedAt: start}, rows); err != nil {
		t.Fatalf("CreateJob(%s) = %v", id, err)
	}
	w := inventory.NewResultWriter(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer w.Close()
	for _, r := range results {
		w.Add(id, r)
	}
	if err := w.Finish(ctx, id, model.JobDone, start.Add(time.Second), outbox...); err != nil {
		t.Fatalf("Finish(%s) = %v", id, err)
	}
}

// pagedJob stores job "jp": hosts h1..h6 ended (h3 failed, h5 with output
// over the page's tail, h6 with a stored-truncated output) and h7 pending,
// with one callback delivery.
func pagedJob(t *testing.T, h *harness) (big []byte) {
	t.Helper()
	big = bytes.Repeat([]byte("line of output\n"), 10_000) // 150,000 bytes
	start := time.UnixMilli(1_790_000_000_000)
	var results []model.Result
	for i := 1; i <= 6; i++ {
		host := fmt.Sprintf("h%d", i)
		results = append(results, model.Result{Host: host, Addr: "10.0.0." + host[1:] + ":4510", State: model.StateOK,
			Stdout: []byte(host + " <ok> & \"done\"\n"), Transport: "agent", StartedAt: start, FinishedAt: start.Add(42 * time.Millisecond)})
	}
	results[2].State, results[2].ExitCode, results[2].Stderr, results[2].Error = model.StateFailed, 3, []byte("boom\n"), "exit status 3"
	results[4].Stdout, results[4].Stderr = big, []byte("é")
	results[5].Truncated = true
	now := time.Now()
	storeJob(t, h.store, "jp", results, []string{"h7"}, inventory.OutboxItem{EventID: "cb-jp", Kind: inventory.KindCallback,
		JobID: "jp", URL: "https://receiver.example/cb", Body: []byte(`{}`), NextAt: now.Add(time.Hour), CreatedAt: now})
	return big
}

// getJob GETs a job page, checks it is 200 and that its bytes are what
// json.Marshal writes for the decoded job (the shape of the unpaged
// answer, field for field), and returns it.
func (h *harness) getJob(path string) wire.Job {
	h.t.Helper()
	status, body := h.do(h.client(nil), "GET", path, "Bearer "+h.admin, nil)
	if status != http.StatusOK {
		h.t.Fatalf("GET %s = %d %s; want 200", path, status, body)
	}
	var j wire.Job
	if err := json.Unmarshal(body, &j); err != nil {
		h.t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	if again, _ := json.Marshal(j); !bytes.Equal(again, body) {
		h.t.Errorf("GET %s =\n%.2000s\nwant it as json.Marshal writes it:\n%.2000s", path, body, again)
	}
	return j
}

func resultHosts(j wire.Job) []string {
	out := []string{}
	for _, r := range j.Results {
		out = append(out, r.Host)
	}
	return out
}

func TestJobPages(t *testing.T) {
	h := newHarness(t)
	big := pagedJob(t, h)
	all := []string{"h1", "h2", "h3", "h4", "h5", "h6", "h7"}
	wantSummary := map[string]int{"ok": 5, "failed": 1, "pending": 1}

	whole := h.getJob("/api/v1/jobs/jp")
	if !slices.Equal(resultHosts(whole), all) || whole.NextHost != "" || fmt.Sprint(whole.Summary) != fmt.Sprint(wantSummary) ||
		whole.Total != 7 || whole.ID != "req-jp" || len(whole.Deliveries) != 1 || whole.Deliveries[0].EventID != "cb-jp" {
		t.Fatalf("GET jobs/jp = hosts %q, next %q, summary %v, total %d, id %q, deliveries %+v; want all 7 hosts, no next, %v, one delivery",
			resultHosts(whole), whole.NextHost, whole.Summary, whole.Total, whole.ID, whole.Deliveries, wantSummary)
	}
	// A page of 7 hosts gives each stream up to 16 MiB / 14: h5 whole.
	if r := whole.Results[4]; r.Stdout != string(big) || r.Stderr != "é" || r.Truncated {
		t.Errorf("h5 = %d bytes of stdout, stderr %q, truncated %v; want its %d bytes whole, é, false", len(r.Stdout), r.Stderr, r.Truncated, len(big))
	}
	if r := whole.Results[0]; r.Stdout != "h1 <ok> & \"done\"\n" || r.Truncated || r.DurationMS != 42 || r.Address != "10.0.0.1:4510" {
		t.Errorf("h1 = %+v; want its output whole, not truncated, 42 ms", r)
	}
	if !whole.Results[5].Truncated || whole.Results[6].State != model.StatePending {
		t.Errorf("h6, h7 = %+v, %+v; want h6 truncated as stored, h7 pending", whole.Results[5], whole.Results[6])
	}

	tests := []struct {
		name     string
		query    string
		want     []string
		wantNext string
	}{
		{"limit 1", "hosts_limit=1", all[:1], "h1"},
		{"limit 1 after the next to last", "hosts_limit=1&hosts_after=h6", all[6:], ""},
		{"a middle page", "hosts_limit=2&hosts_after=h2", all[2:4], "h4"},
		{"limit equal to the hosts", "hosts_limit=7", all, ""},
		{"limit over the hosts", "hosts_limit=10000", all, ""},
		{"one short", "hosts_limit=6", all[:6], "h6"},
		{"after the last host", "hosts_after=h7", nil, ""},
		{"after the last host, limit 1", "hosts_limit=1&hosts_after=h7", nil, ""},
		{"after an unknown host between two", "hosts_limit=2&hosts_after=h35", all[3:5], "h5"},
		{"after an unknown host past all", "hosts_after=zzz", nil, ""},
		{"after an unknown host before all", "hosts_after=a", all, ""},
		{"after nothing", "hosts_after=", all, ""},
		{"escaped after", "hosts_limit=1&hosts_after=h%33", all[3:4], "h4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := h.getJob("/api/v1/jobs/jp?" + tt.query)
			want := tt.want
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(resultHosts(j), want) || j.NextHost != tt.wantNext {
				t.Errorf("?%s = hosts %q, next_host %q; want %q, %q", tt.query, resultHosts(j), j.NextHost, want, tt.wantNext)
			}
			if fmt.Sprint(j.Summary) != fmt.Sprint(wantSummary) || j.Total != 7 || j.State != model.JobDone || len(j.Deliveries) != 1 {
				t.Errorf("?%s: summary %v, total %d, state %s, %d deliveries; want the whole job's", tt.query, j.Summary, j.Total, j.State, len(j.Deliveries))
			}
		})
	}

	// Following next_host with limits 1 to 7 yields the one-page answer,
	// every host once; an exact multiple ends without an empty page.
	for limit := 1; limit <= 7; limit++ {
		var got []wire.HostResult
		pages, after := 0, ""
		for {
			j := h.getJob(fmt.Sprintf("/api/v1/jobs/jp?hosts_limit=%d&hosts_after=%s", limit, after))
			pages++
			got = append(got, j.Results...)
			if after = j.NextHost; after == "" {
				break
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(whole.Results) || pages != (7+limit-1)/limit {
			t.Errorf("limit %d: %d pages of hosts %q; want %d pages, the whole job's results", limit, pages, resultHosts(wire.Job{Results: got}), (7+limit-1)/limit)
		}
	}

	// output=none: states and counts alone.
	j := h.getJob("/api/v1/jobs/jp?output=none&hosts_limit=7")
	for _, r := range j.Results {
		if r.Stdout != "" || r.Stderr != "" || r.Truncated != (r.Host == "h6") {
			t.Errorf("output=none: %s = %q, %q, truncated %v; want no output, truncated only as stored (h6)", r.Host, r.Stdout, r.Stderr, r.Truncated)
		}
	}
	if j.Results[2].State != model.StateFailed || j.Results[2].ExitCode != 3 || j.Results[2].Error != "exit status 3" {
		t.Errorf("output=none: h3 = %+v; want failed, exit 3, its error", j.Results[2])
	}
	j = h.getJob("/api/v1/jobs/jp?output=tail&hosts_limit=1&hosts_after=h4")
	if len(j.Results) != 1 || j.Results[0].Stdout != string(big) {
		t.Errorf("output=tail: %+v; want h5's output whole", resultHosts(j))
	}
}

// TestWaitAnswersTheFirstPage: the ?wait answer of an exec is the job's
// first page, as GET without parameters; next_host pages on.
func TestWaitAnswersTheFirstPage(t *testing.T) {
	h := newHarness(t)
	var inv strings.Builder
	var want []string
	for i := range api.DefaultHostsLimit + 2 {
		id := fmt.Sprintf("10.9.%d.%d", i/200, i%200+1)
		fmt.Fprintln(&inv, id)
		want = append(want, id)
	}
	slices.Sort(want)
	h.adminDo("POST", "/api/v1/hosts/import", inv.String(), nil, http.StatusOK)
	var first wire.Job
	h.adminDo("POST", "/api/v1/exec?wait=30s", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"10.9.*"}}, CmdLine: "hostname"}, &first, http.StatusOK)
	if first.Total != len(want) || len(first.Results) != api.DefaultHostsLimit || first.NextHost != want[api.DefaultHostsLimit-1] ||
		first.Summary["ok"] != len(want) {
		t.Fatalf("exec?wait = %d of %d hosts, next_host %q, summary %v; want the first %d, next_host %s, all ok",
			len(first.Results), first.Total, first.NextHost, first.Summary, api.DefaultHostsLimit, want[api.DefaultHostsLimit-1])
	}
	if got := h.getJob("/api/v1/jobs/" + first.JobID); fmt.Sprint(got) != fmt.Sprint(first) {
		t.Errorf("GET of the job differs from the ?wait answer")
	}
	rest := h.getJob("/api/v1/jobs/" + first.JobID + "?hosts_after=" + first.NextHost)
	if got := append(resultHosts(first), resultHosts(rest)...); !slices.Equal(got, want) || rest.NextHost != "" {
		t.Errorf("the two pages hold %d hosts, then next_host %q; want all %d in order, then none", len(got), rest.NextHost, len(want))
	}
	if rest.Results[0].Stdout != rest.Results[0].Host+"\n" {
		t.Errorf("second page: %+v; want the host's output", rest.Results[0])
	}
}

func TestJobPageBadParameters(t *testing.T) {
	h := newHarness(t)
	pagedJob(t, h)
	tests := []struct{ path, want string }{
		{"/api/v1/jobs/jp?hosts_limit=0", "hosts_limit"},
		{"/api/v1/jobs/jp?hosts_limit=-1", "hosts_limit"},
		{"/api/v1/jobs/jp?hosts_limit=10001", "1 to 10000"},
		{"/api/v1/jobs/jp?hosts_limit=99999999999999999999999", "hosts_limit"},
		{"/api/v1/jobs/jp?hosts_limit=ten", "hosts_limit"},
		{"/api/v1/jobs/jp?hosts_limit=1.5", "hosts_limit"},
		{"/api/v1/jobs/jp?hosts_limit=", "hosts_limit"},
		{"/api/v1/jobs/jp?hosts_limit=5&output=full", "output"},
		{"/api/v1/jobs/jp?output=", "output"},
		{"/api/v1/jobs/jp/hosts/h1/output?stream=stdin", "stream"},
		{"/api/v1/jobs/jp/hosts/h1/output?stream=", "stream"},
	}
	for _, tt := range tests {
		before := h.dump()
		status, body := h.do(h.client(nil), "GET", tt.path, "Bearer "+h.admin, nil)
		if status != http.StatusBadRequest {
			t.Errorf("GET %s = %d %.200s; want 400", tt.path, status, body)
		}
		wantError(t, tt.path, body, tt.want)
		h.wantUnchanged(tt.path, before)
		req := httptest.NewRequest("GET", tt.path, nil)
		req.Header.Set("Authorization", "Bearer "+h.admin)
		if err := api.OpenAPIRefuses(req); err == nil {
			t.Errorf("GET %s: the server refuses it, but api/openapi.yaml takes it", tt.path)
		}
	}
	// A bad parameter of an unknown job is still a bad request.
	if status, body := h.do(h.client(nil), "GET", "/api/v1/jobs/nope?hosts_limit=0", "Bearer "+h.admin, nil); status != http.StatusBadRequest {
		t.Errorf("GET jobs/nope?hosts_limit=0 = %d %s; want 400", status, body)
	}
}

// get sends an authenticated GET and returns the answer with its body read.
func (h *harness) get(path string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.srv.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.admin)
	resp, err := h.client(nil).Do(req)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	return resp, b
}

func TestJobHostRoutes(t *testing.T) {
	h := newHarness(t)
	big := pagedJob(t, h)
	binary := append([]byte("\x00\xff\xfe not UTF-8 \x1b[31m"), big...)
	storeJob(t, h.store, "jb", []model.Result{{Host: "bin", State: model.StateOK, Stdout: binary, Stderr: []byte("warn\n"), Truncated: true}}, nil)

	var r wire.HostResult
	h.adminDo("GET", "/api/v1/jobs/jp/hosts/h5", nil, &r, http.StatusOK)
	if r.Host != "h5" || r.Stdout != string(big) || r.Stderr != "é" || r.Truncated || r.DurationMS != 42 || r.Transport != "agent" {
		t.Errorf("GET jobs/jp/hosts/h5 = %s, %d bytes of stdout, stderr %q, truncated %v; want all %d bytes, é, not truncated (as stored)",
			r.Host, len(r.Stdout), r.Stderr, r.Truncated, len(big))
	}
	r = wire.HostResult{}
	h.adminDo("GET", "/api/v1/jobs/jp/hosts/h7", nil, &r, http.StatusOK)
	if r.State != model.StatePending || r.Stdout != "" {
		t.Errorf("GET jobs/jp/hosts/h7 = %+v; want pending without output", r)
	}

	for _, tt := range []struct {
		path      string
		want      []byte
		truncated string
	}{
		{"/api/v1/jobs/jb/hosts/bin/output", binary, "true"},
		{"/api/v1/jobs/jb/hosts/bin/output?stream=stdout", binary, "true"},
		{"/api/v1/jobs/jb/hosts/bin/output?stream=stderr", []byte("warn\n"), "true"},
		{"/api/v1/jobs/jp/hosts/h5/output", big, "false"},
		{"/api/v1/jobs/jp/hosts/h7/output?stream=stderr", nil, "false"},
	} {
		resp, b := h.get(tt.path)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(b, tt.want) || resp.Header.Get("Content-Type") != "application/octet-stream" ||
			resp.Header.Get("X-Felix-Truncated") != tt.truncated {
			t.Errorf("GET %s = %d, %d bytes (%q…), %s, truncated %q; want 200, the %d bytes stored, octet-stream, %s", tt.path, resp.StatusCode, len(b),
				b[:min(len(b), 20)], resp.Header.Get("Content-Type"), resp.Header.Get("X-Felix-Truncated"), len(tt.want), tt.truncated)
		}
	}

	for _, tt := range []struct{ path, want string }{
		{"/api/v1/jobs/nope/hosts/h1", "job nope"},
		{"/api/v1/jobs/jp/hosts/h8", "host h8 in job jp"},
		{"/api/v1/jobs/nope/hosts/h1/output", "job nope"},
		{"/api/v1/jobs/jp/hosts/nope/output?stream=stderr", "host nope in job jp"},
	} {
		before := h.dump()
		status, body := h.do(h.client(nil), "GET", tt.path, "Bearer "+h.admin, nil)
		if status != http.StatusNotFound {
			t.Errorf("GET %s = %d %.200s; want 404", tt.path, status, body)
		}
		wantError(t, tt.path, body, tt.want)
		h.wantUnchanged(tt.path, before)
	}
}

// TestJobPageMemory serves a job of 300 hosts with 256 KiB of stored output
// each (75 MiB) and watches the heap while a client reads it: the master
// must not hold the output of all hosts, nor a page of it. The server is
// not wrapped in the OpenAPI check here, which keeps up to 32 MiB of each
// answer to validate it (TestJobPages checks the same answers' shape).
func TestJobPageMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 75 MiB")
	}
	const hosts, stdoutSize, stderrSize = 300, 192 << 10, 64 << 10
	ctx := context.Background()
	store, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "felix.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tok, err := store.CreateAPIToken(ctx, "admin", inventory.RoleAdmin, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var results []model.Result
	for i := range hosts {
		host := fmt.Sprintf("host%03d", i)
		line := []byte(host + " says something long enough to fill a line of output\n")
		out := bytes.Repeat(line, stdoutSize/len(line)+1)
		results = append(results, model.Result{Host: host, State: model.StateOK, Stdout: out[:stdoutSize],
			Stderr: bytes.Repeat([]byte{'e'}, stderrSize), Transport: "agent"})
	}
	storeJob(t, store, "big", results, nil)
	results = nil
	srv := httptest.NewServer((&api.Server{Store: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}).Handler())
	t.Cleanup(srv.Close)

	read := func(path string, tail int) (n int, sent int64) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET %s = %d %s", path, resp.StatusCode, b)
		}
		cr := &countingReader{r: resp.Body}
		i := 0
		n = decodeResults(t, cr, func(r wire.HostResult) {
			want := fmt.Sprintf("host%03d", i)
			wantOut, wantErr := min(tail, stdoutSize), min(tail, stderrSize)
			if r.Host != want || len(r.Stdout) != wantOut || len(r.Stderr) != wantErr || r.Truncated != (tail < stdoutSize) {
				t.Fatalf("result %d = %s, %d+%d bytes, truncated %v; want %s, %d+%d bytes", i, r.Host, len(r.Stdout), len(r.Stderr), r.Truncated, want, wantOut, wantErr)
			}
			i++
		})
		return n, cr.n
	}
	read("/api/v1/jobs/big?hosts_limit=1", api.PageTail(1)) // warm up: connection, pools, statements; one host is whole

	defer debug.SetGCPercent(debug.SetGCPercent(10)) // the heap follows what is live
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	peak := sampleHeap()
	n, sent := read("/api/v1/jobs/big", api.JobOutputTail) // 300 hosts: the tails
	grew := peak() - base.HeapAlloc
	var end runtime.MemStats
	runtime.ReadMemStats(&end)

	stored := uint64(hosts * (stdoutSize + stderrSize))
	t.Logf("GET of %d hosts × %d KiB stored (%d MiB): %d results, %.1f MiB sent; heap grew at most %.1f MiB; %.1f MiB allocated in all",
		hosts, (stdoutSize+stderrSize)>>10, stored>>20, n, float64(sent)/(1<<20), float64(grew)/(1<<20), float64(end.TotalAlloc-base.TotalAlloc)/(1<<20))
	if n != hosts {
		t.Fatalf("read %d results; want %d", n, hosts)
	}
	if grew > stored/4 {
		t.Errorf("the heap grew by %d MiB serving the job; want under a quarter of its %d MiB of output", grew>>20, stored>>20)
	}
}

// sampleHeap watches HeapAlloc until the returned function is called,
// which returns the highest value seen.
func sampleHeap() func() uint64 {
	var mu sync.Mutex
	var peak uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapAlloc)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// decodeResults reads a job answer from r a result at a time, calling fn
// with each, and returns how many it read; the rest of the job is skipped.
func decodeResults(t *testing.T, r io.Reader, fn func(wire.HostResult)) int {
	t.Helper()
	dec := json.NewDecoder(r)
	n := 0
	want := func(d json.Delim) {
		tok, err := dec.Token()
		if err != nil || tok != d {
			t.Fatalf("job answer: %v, %v; want %v", tok, err, d)
		}
	}
	want('{')
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			t.Fatalf("job answer: %v", err)
		}
		if key != "results" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatalf("job answer: %s: %v", key, err)
			}
			continue
		}
		want('[')
		for dec.More() {
			var hr wire.HostResult
			if err := dec.Decode(&hr); err != nil {
				t.Fatalf("job answer: result %d: %v", n, err)
			}
			fn(hr)
			n++
		}
		want(']')
	}
	want('}')
	return n
}

func TestPageTail(t *testing.T) {
	for _, tc := range []struct{ hosts, want int }{
		{0, 8 << 20}, {1, 8 << 20}, {7, (16 << 20) / 14}, {128, 64 << 10}, {1000, api.JobOutputTail}, {10000, api.JobOutputTail},
	} {
		if got := api.PageTail(tc.hosts); got != tc.want {
			t.Errorf("PageTail(%d) = %d, want %d", tc.hosts, got, tc.want)
		}
	}
}
