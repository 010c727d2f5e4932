package rootfs

import (
	"slices"
	"testing"
)

func TestPythonModules(t *testing.T) {
	got := PythonModules([]string{"python3.11", "python3-pandas", "dash", "python3-numpy", "python3-pil", "python3-matplotlib", "python3-dev", "python3-pandas", "python3-minimal", "python3-numpy-dbg"})
	want := []string{"PIL", "matplotlib", "numpy", "pandas"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
