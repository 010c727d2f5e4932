package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// replayBlock mirrors `replay { ... }` as written.
type replayBlock struct {
	Snapshots     hcl.Expression `hcl:"snapshots,optional"`
	KeepSnapshots *int           `hcl:"keep_snapshots,optional"`
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

// Replay configures the replay recorder's use of backend snapshots.
type Replay struct {
	// Snapshots is SnapshotsEveryStep, SnapshotsOnDemand (the default) or
	// SnapshotsOff.
	Snapshots string
	// KeepSnapshots is how many backend snapshots a live session keeps;
	// taking one more deletes its oldest.
	KeepSnapshots int
}

var snapshotModes = []string{SnapshotsEveryStep, SnapshotsOnDemand, SnapshotsOff}

func buildReplay(ctx *hcl.EvalContext, b *replayBlock, diags *hcl.Diagnostics) Replay {
	r := Replay{Snapshots: SnapshotsOnDemand, KeepSnapshots: DefaultKeepSnapshots}
	if b == nil {
		return r
	}
	if present(b.Snapshots) {
		v, d := b.Snapshots.Value(ctx)
		*diags = append(*diags, d...)
		switch {
		case d.HasErrors():
		case v.IsNull() || v.Type() != cty.String || !validMode(v.AsString()):
			got := "a non-string value"
			if !v.IsNull() && v.Type() == cty.String {
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
	return r
}

func validMode(s string) bool {
	for _, m := range snapshotModes {
		if s == m {
			return true
		}
	}
	return false
}
