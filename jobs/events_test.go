package jobs

import (
	"bytes"
	"testing"

	"github.com/felix-ops/felix/model"
)

// A job's hub keeps output chunks up to maxHubOutput, byte for byte; past
// it one notice says so and later chunks are neither kept nor copied,
// while state changes still are.
func TestHubPublishOutput(t *testing.T) {
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	tests := []struct {
		name        string
		chunks      int
		wantOutput  int // events of type output
		wantNotices int
	}{
		{"under the bound", 3, 3, 0},
		{"exactly the bound", maxHubOutput >> 20, maxHubOutput >> 20, 0},
		{"past the bound", maxHubOutput>>20 + 5, maxHubOutput >> 20, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub()
			for i := range tt.chunks {
				chunk[0] = byte('a' + i%26)
				h.publishOutput("h1", model.Stdout, chunk)
			}
			h.publish(model.Event{Type: model.EventHost, Host: "h1", State: string(model.StateOK)})
			events, _, _ := h.since(0)
			var outs, notices, hosts int
			for i, e := range events {
				switch e.Type {
				case model.EventOutput:
					outs++
					if len(e.Data) != len(chunk) || e.Data[0] != byte('a'+i%26) || e.Host != "h1" || e.Stream != "stdout" {
						t.Errorf("event %d: %d bytes from %q %q starting %q; want the chunk published", i, len(e.Data), e.Host, e.Stream, e.Data[:1])
					}
				case model.EventNotice:
					notices++
				case model.EventHost:
					hosts++
				}
				if e.Seq != i+1 {
					t.Errorf("event %d has seq %d", i, e.Seq)
				}
			}
			if outs != tt.wantOutput || notices != tt.wantNotices || hosts != 1 {
				t.Errorf("%d output, %d notices, %d host events; want %d, %d, 1", outs, notices, hosts, tt.wantOutput, tt.wantNotices)
			}
			if h.output > maxHubOutput {
				t.Errorf("the hub keeps %d bytes of output; want at most %d", h.output, maxHubOutput)
			}
		})
	}
}
