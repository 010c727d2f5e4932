package sdk

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLibMounts(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ok := func(target string) Mount { return Mount{Source: dir, Target: target} }
	good, err := LibMounts(&SessionSpec{Mounts: []Mount{ok(GuestSkills), ok(GuestTools + "/files")}})
	if err != nil || len(good) != 2 || good[0].Rel != "skills" || good[1].Rel != "tools/files" || good[0].Source != dir {
		t.Fatalf("good mounts: %+v, %v", good, err)
	}
	for _, m := range []Mount{
		ok("/etc"), ok(GuestLib), ok(GuestLib + "/"), ok(GuestLib + "/../etc"), ok(GuestLib + "/a/../../etc"),
		ok(GuestLib + "/a//b"), ok(GuestLib + "/./a"), ok(GuestLib + "/a/.."), ok(GuestLib + "x/a"),
		{Source: file, Target: GuestSkills}, {Source: filepath.Join(dir, "missing"), Target: GuestSkills},
	} {
		if _, err := LibMounts(&SessionSpec{Mounts: []Mount{m}}); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
	if _, err := LibMounts(&SessionSpec{Mounts: []Mount{ok(GuestSkills), ok(GuestSkills)}}); err == nil {
		t.Error("duplicate target accepted")
	}
}
