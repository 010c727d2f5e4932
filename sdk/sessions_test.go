package sdk

import (
	"errors"
	"testing"
)

func TestSessionsTable(t *testing.T) {
	var tab Sessions[string]
	if err := tab.Reserve("a"); err != nil {
		t.Fatal(err)
	}
	if err := tab.Reserve("a"); !errors.Is(err, ErrSessionExists) {
		t.Fatalf("duplicate reserve: %v", err)
	}
	if _, err := tab.Get("a"); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("a starting session is not served: %v", err)
	}
	if tab.Len() != 0 {
		t.Fatal("a starting session is not counted")
	}
	tab.Settle("a", "A", nil)
	if v, err := tab.Get("a"); err != nil || v != "A" {
		t.Fatalf("get: %q %v", v, err)
	}
	tab.Reserve("b")
	boom := errors.New("boom")
	if err := tab.Settle("b", "", boom); err != boom {
		t.Fatalf("settle returns the error: %v", err)
	}
	if err := tab.Reserve("b"); err != nil {
		t.Fatalf("a failed start frees the id: %v", err)
	}
	if v, err := tab.Remove("a"); err != nil || v != "A" {
		t.Fatalf("remove: %q %v", v, err)
	}
	if _, err := tab.Remove("a"); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	tab.Settle("b", "B", nil)
	if all := tab.TakeAll(); len(all) != 1 || all[0] != "B" || tab.Len() != 0 {
		t.Fatalf("take all: %v", all)
	}
}
