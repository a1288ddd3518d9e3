package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/metrics"
	"github.com/felix-ops/felix/model"
)

// scrape serves m's metrics over real HTTP and parses the answer with the
// Prometheus text parser.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the scrape: %v", err)
	}
	return fams
}

// value is the value of the series of family name whose labels are
// labels (name, value pairs); ok false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestJobEnded(t *testing.T) {
	m := metrics.New(metrics.Sources{}, testenv.Logger(t))
	t0 := time.Now()
	m.JobEnded(model.CmdLine, model.JobDone, []model.Result{
		{Host: "a", State: model.StateOK, Transport: "agent", StartedAt: t0, FinishedAt: t0.Add(30 * time.Millisecond)},
		{Host: "b", State: model.StateOK, Transport: "ssh", StartedAt: t0, FinishedAt: t0.Add(2 * time.Second)},
		{Host: "c", State: model.StateFailed, Transport: "agent", StartedAt: t0, FinishedAt: t0.Add(time.Millisecond)},
		{Host: "d", State: model.StateUnreachable}, // never ran: no transport, no time
	})
	m.JobEnded(model.CmdPush, model.JobCancelled, []model.Result{{Host: "a", State: model.StateCancelled}})
	m.JobEnded("", model.JobDone, nil) // recovered, its request unreadable
	fams := scrape(t, m)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"felix_jobs_finished_total", []string{"type", "line", "state", "done"}, 1},
		{"felix_jobs_finished_total", []string{"type", "push", "state", "cancelled"}, 1},
		{"felix_jobs_finished_total", []string{"type", "unknown", "state", "done"}, 1},
		{"felix_hosts_finished_total", []string{"type", "line", "state", "ok"}, 2},
		{"felix_hosts_finished_total", []string{"type", "line", "state", "failed"}, 1},
		{"felix_hosts_finished_total", []string{"type", "line", "state", "unreachable"}, 1},
		{"felix_hosts_finished_total", []string{"type", "push", "state", "cancelled"}, 1},
		{"felix_host_duration_seconds", []string{"type", "line", "transport", "agent"}, 2},
		{"felix_host_duration_seconds", []string{"type", "line", "transport", "ssh"}, 1},
	}
	for _, tt := range tests {
		if got, ok := value(fams, tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v); want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	// The ssh host's 2 s fall in the 2.5 s bucket and not in the 1 s one.
	for _, mt := range fams["felix_host_duration_seconds"].Metric {
		if mt.Label[1].GetValue() != "ssh" {
			continue
		}
		for _, b := range mt.Histogram.Bucket {
			want := uint64(0)
			if b.GetUpperBound() >= 2.5 {
				want = 1
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("ssh bucket le=%v holds %d; want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
}

func TestRequests(t *testing.T) {
	m := metrics.New(metrics.Sources{}, testenv.Logger(t))
	m.Request("GET", "/api/v1/jobs/:id", 200)
	m.Request("GET", "/api/v1/jobs/:id", 204)
	m.Request("GET", "/api/v1/jobs/:id", 404)
	m.Request("GET", "", 404)
	m.Request("POST", "/api/v1/exec", 503)
	fams := scrape(t, m)
	tests := []struct {
		labels []string
		want   float64
	}{
		{[]string{"method", "GET", "route", "/api/v1/jobs/:id", "code", "2xx"}, 2},
		{[]string{"method", "GET", "route", "/api/v1/jobs/:id", "code", "4xx"}, 1},
		{[]string{"method", "GET", "route", "unmatched", "code", "4xx"}, 1},
		{[]string{"method", "POST", "route", "/api/v1/exec", "code", "5xx"}, 1},
	}
	for _, tt := range tests {
		if got, ok := value(fams, "felix_api_requests_total", tt.labels...); !ok || got != tt.want {
			t.Errorf("felix_api_requests_total%v = %v (found %v); want %v", tt.labels, got, ok, tt.want)
		}
	}
}

func TestStatusClass(t *testing.T) {
	for status, want := range map[int]string{200: "2xx", 301: "3xx", 401: "4xx", 599: "5xx", 0: "other", 600: "other", 99: "other"} {
		if got := metrics.StatusClass(status); got != want {
			t.Errorf("StatusClass(%d) = %q; want %q", status, got, want)
		}
	}
}

func TestDelivered(t *testing.T) {
	m := metrics.New(metrics.Sources{}, testenv.Logger(t))
	m.Delivered(inventory.KindCallback, model.DeliveryDelivered)
	m.Delivered(inventory.KindCallback, model.DeliveryPending)
	m.Delivered(inventory.KindCallback, model.DeliveryPending)
	m.Delivered(inventory.KindSlack, model.DeliveryDead)
	fams := scrape(t, m)
	for _, tt := range []struct {
		kind, state string
		want        float64
	}{{"callback", "delivered", 1}, {"callback", "pending", 2}, {"slack", "dead", 1}} {
		if got, ok := value(fams, "felix_deliveries_total", "kind", tt.kind, "state", tt.state); !ok || got != tt.want {
			t.Errorf("felix_deliveries_total{%s,%s} = %v (found %v); want %v", tt.kind, tt.state, got, ok, tt.want)
		}
	}
}

// The gauges are read from their sources at each scrape; a source that
// fails leaves its metric out and the rest is served.
func TestGauges(t *testing.T) {
	running, connected := 3, 7
	outboxErr := error(nil)
	m := metrics.New(metrics.Sources{
		RunningJobs: func() int { return running },
		Connected:   func() int { return connected },
		Minions: func(context.Context) ([]inventory.GroupCount, error) {
			return []inventory.GroupCount{{Values: []string{"accepted", "ok"}, N: 5}, {Values: []string{"pending", "unknown"}, N: 2}}, nil
		},
		Outbox: func(context.Context) ([]inventory.GroupCount, error) {
			return []inventory.GroupCount{{Values: []string{"callback", "pending"}, N: 4}}, outboxErr
		},
		SSHPool: func() (int, int) { return 11, 2 },
		Content: func() (int, int64) { return 9, 12345 },
	}, testenv.Logger(t))
	fams := scrape(t, m)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"felix_jobs_running", nil, 3},
		{"felix_minions_connected", nil, 7},
		{"felix_minions", []string{"state", "accepted", "health", "ok"}, 5},
		{"felix_minions", []string{"state", "pending", "health", "unknown"}, 2},
		{"felix_outbox_deliveries", []string{"kind", "callback", "state", "pending"}, 4},
		{"felix_ssh_pool_connections", nil, 11},
		{"felix_ssh_pool_sessions", nil, 2},
		{"felix_content_blobs", nil, 9},
		{"felix_content_bytes", nil, 12345},
	}
	for _, tt := range tests {
		if got, ok := value(fams, tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v); want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Errorf("the Go and process collectors are missing")
	}
	running, connected, outboxErr = 0, 1, errors.New("database is locked")
	fams = scrape(t, m)
	if got, _ := value(fams, "felix_jobs_running"); got != 0 {
		t.Errorf("felix_jobs_running after the jobs ended = %v; want 0 (read at each scrape)", got)
	}
	if _, ok := value(fams, "felix_outbox_deliveries"); ok {
		t.Errorf("felix_outbox_deliveries served although its source failed")
	}
	if got, _ := value(fams, "felix_minions_connected"); got != 1 {
		t.Errorf("felix_minions_connected = %v; want 1 (the rest served when one source fails)", got)
	}
}

// Two masters in one process have registries of their own.
func TestRegistriesApart(t *testing.T) {
	a := metrics.New(metrics.Sources{}, testenv.Logger(t))
	b := metrics.New(metrics.Sources{}, testenv.Logger(t))
	a.JobEnded(model.CmdLine, model.JobDone, nil)
	if _, ok := value(scrape(t, b), "felix_jobs_finished_total", "type", "line"); ok {
		t.Errorf("a job ended on one master shows in the other's metrics")
	}
}
