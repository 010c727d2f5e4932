package sdk

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "512MiB": 512 << 20, "1GB": 1e9, "64K": 64 << 10, "1.5GiB": 3 << 29, " 2 MiB ": 2 << 20} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1MiB", "12XB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestHostOwned(t *testing.T) {
	for rel, want := range map[string]bool{
		".mcpruntime": true, ".mcpruntime/daemon.sock": true, ".replay": false, ".replay/s1.jsonl": true,
		".replay/objects/ab": true, ".replay/state": false, ".replay/state/s1-1.pkl": false,
		"notes.txt": false, ".replayed/x": false, "sub/.replay/x": false,
	} {
		if got := HostOwned(rel); got != want {
			t.Errorf("HostOwned(%q) = %v, want %v", rel, got, want)
		}
	}
}
