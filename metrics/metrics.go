// Package metrics is the master's Prometheus metrics: counters the job
// service, the notifier and the REST API report to as things happen, and
// gauges read from their sources at each scrape. Every master has its own
// registry (tests run many masters in one process), with Go's runtime and
// process collectors. The packages that report declare the small
// interfaces they call (jobs.Observer, api.RequestObserver); Metrics
// satisfies them.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// Sources are what the gauges are read from at each scrape; a nil source
// leaves its metric out.
type Sources struct {
	// RunningJobs is how many jobs run now.
	RunningJobs func() int
	// Minions counts the registered minions by key state and health.
	Minions func(ctx context.Context) ([]inventory.GroupCount, error)
	// Connected is how many minions the master holds a ready gRPC
	// connection to.
	Connected func() int
	// SSHPool is how many pooled SSH connections are open and how many
	// sessions run on them.
	SSHPool func() (conns, sessions int)
	// Outbox counts the callback and Slack deliveries stored, by kind and
	// delivery state.
	Outbox func(ctx context.Context) ([]inventory.GroupCount, error)
	// Content is the content store's blobs and bytes.
	Content func() (blobs int, bytes int64)
}

// scrapeTimeout bounds the inventory queries of one scrape.
const scrapeTimeout = 5 * time.Second

// HostBuckets are the buckets of felix_host_duration_seconds: from a
// no-op on a warm connection (milliseconds) to long commands.
var HostBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800}

// Metrics is one master's metrics.
type Metrics struct {
	reg        *prometheus.Registry
	jobs       *prometheus.CounterVec
	hosts      *prometheus.CounterVec
	hostSecs   *prometheus.HistogramVec
	requests   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
}

// New makes a master's metrics with their own registry; log gets the
// errors of scrape-time sources.
func New(src Sources, log *slog.Logger) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "felix_jobs_finished_total",
			Help: "Jobs that ended, by command type and final job state."}, []string{"type", "state"}),
		hosts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "felix_hosts_finished_total",
			Help: "Hosts of jobs that ended, by command type and final host state."}, []string{"type", "state"}),
		hostSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "felix_host_duration_seconds",
			Help:    "Time from a host's start to its result, by command type and the transport it ran over (agent, ssh).",
			Buckets: HostBuckets}, []string{"type", "transport"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "felix_api_requests_total",
			Help: "REST API requests answered, by method, route template and status class."}, []string{"method", "route", "code"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "felix_deliveries_total",
			Help: "Delivery attempts of callbacks and Slack messages, by kind and the state they left the delivery in."}, []string{"kind", "state"}),
	}
	m.reg.MustRegister(m.jobs, m.hosts, m.hostSecs, m.requests, m.deliveries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&gauges{src: src, log: log})
	return m
}

// Handler serves the metrics in the Prometheus text format (or what the
// scraper asks for); errors of one source are logged and leave its
// metric out, the rest is served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 4})
}

// Registry is the master's registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// JobEnded counts a job that ended and each of its hosts (jobs.Observer).
// Hosts that ran (a transport was picked and a start time recorded) add
// their run time to felix_host_duration_seconds.
func (m *Metrics) JobEnded(cmdType string, state model.JobState, results []model.Result) {
	if cmdType == "" {
		cmdType = "unknown" // a job recovered whose request could not be read
	}
	m.jobs.WithLabelValues(cmdType, string(state)).Inc()
	for _, r := range results {
		m.hosts.WithLabelValues(cmdType, string(r.State)).Inc()
		if r.Transport != "" && !r.StartedAt.IsZero() && !r.FinishedAt.Before(r.StartedAt) {
			m.hostSecs.WithLabelValues(cmdType, r.Transport).Observe(r.FinishedAt.Sub(r.StartedAt).Seconds())
		}
	}
}

// Request counts one API request (api.RequestObserver). route is the
// router's template ("/api/v1/jobs/:id"), never the raw path, so the
// label's values stay few; requests no route matched are "unmatched".
func (m *Metrics) Request(method, route string, status int) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(method, route, StatusClass(status)).Inc()
}

// Delivered counts one delivery attempt and the state it left the
// delivery in: delivered, pending (to be retried) or dead.
func (m *Metrics) Delivered(kind string, state model.DeliveryState) {
	m.deliveries.WithLabelValues(kind, string(state)).Inc()
}

// StatusClass is an HTTP status's class: "2xx", "4xx", ...
func StatusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// gauges reads Sources at each scrape.
type gauges struct {
	src Sources
	log *slog.Logger
}

var (
	descRunning   = prometheus.NewDesc("felix_jobs_running", "Jobs running now.", nil, nil)
	descMinions   = prometheus.NewDesc("felix_minions", "Registered minions by key state (pending, accepted, rejected) and last known health (ok, unreachable, unknown).", []string{"state", "health"}, nil)
	descConnected = prometheus.NewDesc("felix_minions_connected", "Minions the master holds a ready gRPC connection to.", nil, nil)
	descSSHConns  = prometheus.NewDesc("felix_ssh_pool_connections", "Pooled SSH connections open or being dialled.", nil, nil)
	descSSHSess   = prometheus.NewDesc("felix_ssh_pool_sessions", "SSH sessions running on pooled connections.", nil, nil)
	descOutbox    = prometheus.NewDesc("felix_outbox_deliveries", "Callback and Slack deliveries stored, by kind and state; state pending is the outbox's depth.", []string{"kind", "state"}, nil)
	descBlobs     = prometheus.NewDesc("felix_content_blobs", "Blobs in the content store.", nil, nil)
	descBytes     = prometheus.NewDesc("felix_content_bytes", "Bytes in the content store.", nil, nil)
)

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRunning, descMinions, descConnected, descSSHConns, descSSHSess, descOutbox, descBlobs, descBytes} {
		ch <- d
	}
}

func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counts := func(d *prometheus.Desc, f func(context.Context) ([]inventory.GroupCount, error)) {
		if f == nil {
			return
		}
		cs, err := f(ctx)
		if err != nil {
			g.log.Warn("metrics: read a gauge", "metric", d.String(), "err", err)
			ch <- prometheus.NewInvalidMetric(d, err)
			return
		}
		for _, c := range cs {
			gauge(d, float64(c.N), c.Values...)
		}
	}
	if g.src.RunningJobs != nil {
		gauge(descRunning, float64(g.src.RunningJobs()))
	}
	counts(descMinions, g.src.Minions)
	if g.src.Connected != nil {
		gauge(descConnected, float64(g.src.Connected()))
	}
	if g.src.SSHPool != nil {
		conns, sessions := g.src.SSHPool()
		gauge(descSSHConns, float64(conns))
		gauge(descSSHSess, float64(sessions))
	}
	counts(descOutbox, g.src.Outbox)
	if g.src.Content != nil {
		blobs, bytes := g.src.Content()
		gauge(descBlobs, float64(blobs))
		gauge(descBytes, float64(bytes))
	}
}
