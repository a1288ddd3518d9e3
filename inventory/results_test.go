package inventory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/felix-ops/felix/model"
)

// storeJob stores job id with a pending row for each of hosts, then the
// given results through the result writer, and finishes it.
func storeJob(t *testing.T, s *Store, id string, hosts []string, results ...model.Result) {
	t.Helper()
	ctx := context.Background()
	var pending []model.Result
	for _, h := range hosts {
		pending = append(pending, model.Result{Host: h, State: model.StatePending})
	}
	if err := s.CreateJob(ctx, Job{ID: id, CmdLine: "true", CmdType: "line", Targets: []string{"*"}, State: model.JobRunning, CreatedAt: t0}, pending); err != nil {
		t.Fatalf("CreateJob(%s) = %v", id, err)
	}
	w := NewResultWriter(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer w.Close()
	for _, r := range results {
		w.Add(id, r)
	}
	if err := w.Finish(ctx, id, model.JobDone, t0); err != nil {
		t.Fatalf("Finish(%s) = %v", id, err)
	}
}

// page reads one page of job id and returns its hosts and next.
func page(t *testing.T, s *Store, id string, p ResultPage) ([]model.Result, string) {
	t.Helper()
	var got []model.Result
	next, err := s.JobResults(context.Background(), id, p, func(r model.Result) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatalf("JobResults(%s, %+v) = %v", id, p, err)
	}
	return got, next
}

func hostNames(rs []model.Result) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Host)
	}
	return out
}

func TestJobResultsPages(t *testing.T) {
	s, _ := newStore(t)
	var hosts []string
	var results []model.Result
	for i := range 10 {
		h := fmt.Sprintf("h%02d", i)
		hosts = append(hosts, h)
		results = append(results, model.Result{Host: h, Addr: h + ":4510", State: model.StateOK, Stdout: []byte(h + "\n"),
			Stderr: []byte("warn " + h), Transport: "agent", StartedAt: t0, FinishedAt: t0.Add(12)})
	}
	results[3].State, results[3].ExitCode, results[3].Error = model.StateFailed, 2, "boom"
	results[4].Files = &model.FileReport{Changed: 1, Size: 9}
	storeJob(t, s, "j", hosts, results[:9]...) // h09 stays pending
	all := hosts
	tests := []struct {
		name     string
		after    string
		limit    int
		want     []string
		wantNext string
	}{
		{"limit 1", "", 1, all[:1], "h00"},
		{"limit 1 in the middle", "h04", 1, all[5:6], "h05"},
		{"a page in the middle", "h00", 3, all[1:4], "h03"},
		{"exact multiple, first page", "", 5, all[:5], "h04"},
		{"exact multiple, last page", "h04", 5, all[5:], ""},
		{"exactly all", "", 10, all, ""},
		{"more than all", "", 10000, all, ""},
		{"one short of all", "", 9, all[:9], "h08"},
		{"the last host alone", "h08", 1, all[9:], ""},
		{"after the last host", "h09", 5, []string{}, ""},
		{"unknown host sorting between two", "h035", 2, all[4:6], "h05"},
		{"unknown host sorting before all", "a", 2, all[:2], "h01"},
		{"unknown host sorting after all", "zz", 2, []string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next := page(t, s, "j", ResultPage{After: tt.after, Limit: tt.limit, Tail: 1 << 20})
			if !slices.Equal(hostNames(got), tt.want) || next != tt.wantNext {
				t.Errorf("page after %q limit %d = %q, next %q; want %q, next %q", tt.after, tt.limit, hostNames(got), next, tt.want, tt.wantNext)
			}
		})
	}

	// With a tail longer than any output, a page holds what Job reads.
	_, full, err := s.Job(context.Background(), "j")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := page(t, s, "j", ResultPage{Limit: 100, Tail: 1 << 20})
	if !reflect.DeepEqual(got, full) {
		t.Errorf("JobResults = %+v\nJob     = %+v", got, full)
	}

	if _, err := s.JobResults(context.Background(), "j", ResultPage{Limit: 0}, func(model.Result) error { return nil }); err == nil {
		t.Error("JobResults with limit 0 = nil; want an error")
	}
	stop := errors.New("stop")
	n := 0
	if _, err := s.JobResults(context.Background(), "j", ResultPage{Limit: 5}, func(model.Result) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("JobResults with fn failing = %v after %d calls; want stop after 1", err, n)
	}
}

// TestJobResultsBatches reads pages across the batch bounds, by rows and
// by bytes: every host comes once, in order.
func TestJobResultsBatches(t *testing.T) {
	s, _ := newStore(t)
	var many, big []string
	var bigResults []model.Result
	for i := range 2*resultBatchRows + 7 {
		many = append(many, fmt.Sprintf("m%04d", i))
	}
	out := bytes.Repeat([]byte("x"), resultBatchBytes/3+1) // a batch takes three
	for i := range 11 {
		h := fmt.Sprintf("b%02d", i)
		big = append(big, h)
		bigResults = append(bigResults, model.Result{Host: h, State: model.StateOK, Stdout: out})
	}
	storeJob(t, s, "many", many)
	storeJob(t, s, "big", big, bigResults...)
	for _, tt := range []struct {
		job   string
		hosts []string
		tail  int
	}{{"many", many, 0}, {"many", many, 64}, {"big", big, len(out)}} {
		for _, limit := range []int{1, 2, 3, 4, 7, resultBatchRows - 1, resultBatchRows, resultBatchRows + 1, 10000} {
			var seen []string
			after, pages := "", 0
			for {
				got, next := page(t, s, tt.job, ResultPage{After: after, Limit: limit, Tail: tt.tail})
				pages++
				if len(got) > limit || (next != "" && (len(got) != limit || next != got[len(got)-1].Host)) {
					t.Fatalf("%s limit %d after %q: %d hosts, next %q", tt.job, limit, after, len(got), next)
				}
				for _, r := range got {
					if tt.job == "big" && len(r.Stdout) != len(out) {
						t.Fatalf("%s: %d bytes of output; want %d", r.Host, len(r.Stdout), len(out))
					}
				}
				seen = append(seen, hostNames(got)...)
				if after = next; next == "" {
					break
				}
			}
			if !slices.Equal(seen, tt.hosts) {
				t.Errorf("%s limit %d tail %d: pages gave %d hosts %q…; want %d in order", tt.job, limit, tt.tail, len(seen), seen[:min(len(seen), 5)], len(tt.hosts))
			}
			if want := max(1, (len(tt.hosts)+limit-1)/limit); pages != want {
				t.Errorf("%s limit %d: %d pages; want %d", tt.job, limit, pages, want)
			}
		}
	}
}

func TestJobResultsTail(t *testing.T) {
	s, _ := newStore(t)
	long := "first line\n" + strings.Repeat("é", 100) // é is two bytes: 211 bytes
	storeJob(t, s, "j", []string{"cut", "fits", "pending", "stored-truncated"},
		model.Result{Host: "cut", State: model.StateOK, Stdout: []byte(long), Stderr: []byte(long)},
		model.Result{Host: "fits", State: model.StateOK, Stdout: []byte("short\n"), Stderr: []byte("é")},
		model.Result{Host: "stored-truncated", State: model.StateOK, Stdout: []byte("head…tail"), Truncated: true})
	type want struct {
		stdout, stderr string
		truncated      bool
	}
	tests := []struct {
		tail int
		want map[string]want
	}{
		{51, map[string]want{ // an odd tail cuts an é in two: its second byte goes
			"cut":              {strings.Repeat("é", 25), strings.Repeat("é", 25), true},
			"fits":             {"short\n", "é", false},
			"pending":          {"", "", false},
			"stored-truncated": {"head…tail", "", true},
		}},
		{211, map[string]want{"cut": {long, long, false}}},
		{200, map[string]want{"cut": {strings.Repeat("é", 100), strings.Repeat("é", 100), true}}},
		{0, map[string]want{
			"cut":              {"", "", false},
			"fits":             {"", "", false},
			"stored-truncated": {"", "", true},
		}},
	}
	for _, tt := range tests {
		got, _ := page(t, s, "j", ResultPage{Limit: 10, Tail: tt.tail})
		for _, r := range got {
			w, ok := tt.want[r.Host]
			if !ok {
				continue
			}
			if string(r.Stdout) != w.stdout || string(r.Stderr) != w.stderr || r.Truncated != w.truncated {
				t.Errorf("tail %d: %s = %q, %q, truncated %v; want %q, %q, %v", tt.tail, r.Host, r.Stdout, r.Stderr, r.Truncated, w.stdout, w.stderr, w.truncated)
			}
			if !utf8.Valid(r.Stdout) || len(r.Stdout) > tt.tail {
				t.Errorf("tail %d: %s stdout %q: not UTF-8 or longer than the tail", tt.tail, r.Host, r.Stdout)
			}
		}
	}
}

func TestJobSummaryResultAndOutput(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	out := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB
	storeJob(t, s, "j", []string{"a", "b", "c", "d"},
		model.Result{Host: "a", State: model.StateOK, Stdout: out, Stderr: []byte("err\n"), Truncated: true, Transport: "ssh"},
		model.Result{Host: "b", State: model.StateFailed, ExitCode: 1},
		model.Result{Host: "c", State: model.StateOK})

	j, err := s.JobSummary(ctx, "j")
	if err != nil || j.ID != "j" || j.State != model.JobDone || j.Total != 4 ||
		fmt.Sprint(j.Summary) != fmt.Sprint(map[string]int{"ok": 2, "failed": 1, "pending": 1}) {
		t.Errorf("JobSummary = %+v, %v; want job j done, 4 hosts, 2 ok, 1 failed, 1 pending", j, err)
	}
	if _, err := s.JobSummary(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("JobSummary(nope) = %v; want ErrNotFound", err)
	}

	r, err := s.JobResult(ctx, "j", "a")
	if err != nil || !bytes.Equal(r.Stdout, out) || string(r.Stderr) != "err\n" || !r.Truncated || r.Transport != "ssh" {
		t.Errorf("JobResult(a) = %d bytes of stdout, %q, truncated %v, %v; want all %d bytes, err, true", len(r.Stdout), r.Stderr, r.Truncated, err, len(out))
	}
	for _, tt := range []struct {
		stream    model.Stream
		want      []byte
		truncated bool
	}{{model.Stdout, out, true}, {model.Stderr, []byte("err\n"), true}} {
		b, trunc, err := s.JobOutput(ctx, "j", "a", tt.stream)
		if err != nil || !bytes.Equal(b, tt.want) || trunc != tt.truncated {
			t.Errorf("JobOutput(a, %s) = %d bytes, %v, %v; want %d bytes, %v", tt.stream, len(b), trunc, err, len(tt.want), tt.truncated)
		}
	}
	if b, trunc, err := s.JobOutput(ctx, "j", "d", model.Stdout); err != nil || len(b) != 0 || trunc {
		t.Errorf("JobOutput of a pending host = %q, %v, %v; want nothing", b, trunc, err)
	}
	if _, _, err := s.JobOutput(ctx, "j", "a", model.Stream(9)); err == nil {
		t.Error("JobOutput of stream 9 = nil; want an error")
	}
	for _, tt := range []struct{ job, host, want string }{{"nope", "a", "job nope"}, {"j", "zz", "host zz in job j"}} {
		_, err := s.JobResult(ctx, tt.job, tt.host)
		_, _, err2 := s.JobOutput(ctx, tt.job, tt.host, model.Stdout)
		for _, e := range []error{err, err2} {
			if !errors.Is(e, ErrNotFound) || !strings.Contains(e.Error(), tt.want) {
				t.Errorf("job %s host %s = %v; want ErrNotFound naming %q", tt.job, tt.host, e, tt.want)
			}
		}
	}
}
