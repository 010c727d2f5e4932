package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// replayBlock mirrors `replay { ... }` as written.
type replayBlock struct {
	Snapshots     hcl.Expression `hcl:"snapshots,optional"`
	KeepSnapshots *int           `hcl:"keep_snapshots,optional"`
	Keep          hcl.Expression `hcl:"keep,optional"`
	MaxSize       hcl.Expression `hcl:"max_size,optional"`
	Range         hcl.Range      `hcl:",def_range"`
}

// When the replay recorder takes backend snapshots (Replay.Snapshots).
const (
	// SnapshotsEveryStep snapshots the session after every recorded step,
	// on backends with the snapshots capability.
	SnapshotsEveryStep = "every_step"
	// SnapshotsOnDemand snapshots only when asked (`replay snapshot`) and
	// just before a resume or fork of a live session's latest step.
	SnapshotsOnDemand = "on_demand"
	// SnapshotsOff never takes backend snapshots: resume and fork always
	// restore the kernel's pickled variables.
	SnapshotsOff = "off"
)

// DefaultKeepSnapshots is how many backend snapshots a session keeps when
// runtime.hcl does not say.
const DefaultKeepSnapshots = 3

// Retention defaults: what the replay store keeps when runtime.hcl does
// not say.
const (
	DefaultReplayKeep    = 30 * 24 * time.Hour
	DefaultReplayMaxSize = 1 << 30
)

// Replay configures the replay recorder's use of backend snapshots and the
// store's retention.
type Replay struct {
	// Snapshots is SnapshotsEveryStep, SnapshotsOnDemand (the default) or
	// SnapshotsOff.
	Snapshots string
	// KeepSnapshots is how many backend snapshots a live session keeps;
	// taking one more deletes its oldest.
	KeepSnapshots int
	// Keep is how long a session's replay (its log, state pickles and the
	// workspace snapshots only it references) is kept after its last
	// step; 0 keeps it forever.
	Keep time.Duration
	// MaxSize caps the store (.replay) in bytes: the least recently
	// active sessions are removed until it fits; 0 is no cap.
	MaxSize int64
}

var snapshotModes = []string{SnapshotsEveryStep, SnapshotsOnDemand, SnapshotsOff}

func buildReplay(ctx *hcl.EvalContext, b *replayBlock, diags *hcl.Diagnostics) Replay {
	r := Replay{Snapshots: SnapshotsOnDemand, KeepSnapshots: DefaultKeepSnapshots, Keep: DefaultReplayKeep, MaxSize: DefaultReplayMaxSize}
	if b == nil {
		return r
	}
	if present(b.Snapshots) {
		v, d := b.Snapshots.Value(ctx)
		*diags = append(*diags, d...)
		switch {
		case d.HasErrors():
		case v.IsNull():
			// Not written: an absent optional attribute evaluates to null.
		case v.Type() != cty.String || !validMode(v.AsString()):
			got := "a non-string value"
			if v.Type() == cty.String {
				got = fmt.Sprintf("%q", v.AsString())
			}
			*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid replay.snapshots",
				Detail:  fmt.Sprintf("Got %s; use one of \"%s\".", got, strings.Join(snapshotModes, `", "`)),
				Subject: b.Snapshots.Range().Ptr()})
		default:
			r.Snapshots = v.AsString()
		}
	}
	if b.KeepSnapshots != nil {
		if *b.KeepSnapshots < 1 {
			*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid keep_snapshots",
				Detail: "replay.keep_snapshots must be at least 1.", Subject: b.Range.Ptr()})
		} else {
			r.KeepSnapshots = *b.KeepSnapshots
		}
	}
	if present(b.Keep) {
		if s, ok := evalString(ctx, b.Keep, "duration", diags); ok {
			d, err := ParseAge(s)
			if err != nil {
				*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid replay.keep",
					Detail: err.Error() + ".", Subject: b.Keep.Range().Ptr()})
			} else {
				r.Keep = d
			}
		}
	}
	if present(b.MaxSize) {
		r.MaxSize = size(ctx, b.MaxSize, r.MaxSize, diags)
	}
	return r
}

// ParseAge parses a retention age: a Go duration ("36h", "90m") or a
// number of days or weeks ("30d", "1.5d", "2w"), also combined with a
// duration ("1d12h"). "0" means no limit.
func ParseAge(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not an age; write it like \"30d\", \"2w\", \"36h\" or \"0\" (keep forever)", s)
	var total time.Duration
	// Leading day and week terms; the rest is a Go duration.
	for {
		i := strings.IndexAny(t, "dw")
		if i <= 0 {
			break
		}
		n, err := strconv.ParseFloat(t[:i], 64)
		if err != nil || n < 0 {
			return 0, bad
		}
		unit := 24 * time.Hour
		if t[i] == 'w' {
			unit *= 7
		}
		total += time.Duration(n * float64(unit))
		t = t[i+1:]
	}
	if t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d < 0 {
			return 0, bad
		}
		total += d
	}
	if total < 0 || (t == "" && total == 0 && strings.TrimSpace(s) == "") {
		return 0, bad
	}
	return total, nil
}

func validMode(s string) bool {
	for _, m := range snapshotModes {
		if s == m {
			return true
		}
	}
	return false
}
