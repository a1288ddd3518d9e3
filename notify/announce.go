package notify

import (
	"time"

	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// Announce returns the deliveries announcing a finished job: a callback to
// spec.CallbackURL and, when Slack is configured (Reconfigure's latest Slack URL), a Slack summary, their
// bodies rendered by Config.CallbackBody and Config.SlackBody. Event ids are "cb-" and "slack-" and
// the job id: the same on every retry, so receivers can deduplicate. It
// satisfies the job service's Announcer.
func (n *Notifier) Announce(job inventory.Job, spec model.JobSpec, results []model.Result) []inventory.OutboxItem {
	now, st := time.Now(), n.now()
	var items []inventory.OutboxItem
	if spec.CallbackURL != "" {
		id := "cb-" + job.ID
		body, err := n.cfg.CallbackBody(id, job, results)
		if err != nil {
			n.log.Error("encode callback", "job", job.ID, "err", err)
		} else {
			items = append(items, inventory.OutboxItem{EventID: id, Kind: inventory.KindCallback, JobID: job.ID,
				URL: spec.CallbackURL, Receiver: receiverOf(spec.CallbackURL), Body: body, NextAt: now, CreatedAt: now})
		}
	}
	if st.slackURL != "" {
		body, err := n.cfg.SlackBody(job, results)
		if err != nil {
			n.log.Error("encode slack message", "job", job.ID, "err", err)
		} else {
			items = append(items, inventory.OutboxItem{EventID: "slack-" + job.ID, Kind: inventory.KindSlack,
				JobID: job.ID, URL: st.slackURL, Receiver: receiverOf(st.slackURL), Body: body, NextAt: now, CreatedAt: now})
		}
	}
	return items
}
