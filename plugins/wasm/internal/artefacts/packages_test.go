package artefacts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBuild lays out the files Check looks for, with a data interpreter
// listing packages when data is not empty.
func fakeBuild(t *testing.T, data string) *Python {
	t.Helper()
	root := t.TempDir()
	dirs := []string{root}
	if data != "" {
		dirs = append(dirs, filepath.Join(root, DataDirName))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(d, "lib", "python"+PythonVersion), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"python.wasm", filepath.Join("lib", "python"+PythonVersion, "os.py")} {
			if err := os.WriteFile(filepath.Join(d, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if data != "" {
		if err := os.WriteFile(filepath.Join(root, DataDirName, PackagesFile), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWithPackagesNoneIsDefault(t *testing.T) {
	p := fakeBuild(t, "pillow=11.1.0\n")
	got, err := p.WithPackages(nil)
	if err != nil || got != p {
		t.Fatalf("no packages: got %+v, %v; want the default build", got, err)
	}
}

func TestWithPackagesSelectsData(t *testing.T) {
	p := fakeBuild(t, "pillow=11.1.0\n")
	for _, name := range []string{"pillow", "Pillow", "PIL"} {
		got, err := p.WithPackages([]string{name})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := filepath.Join(p.Dir, DataDirName, "python.wasm"); got.Wasm != want {
			t.Fatalf("%s: wasm %s, want %s", name, got.Wasm, want)
		}
		if want := filepath.Join(p.Dir, DataDirName, "lib"); got.Lib != want {
			t.Fatalf("%s: lib %s, want %s", name, got.Lib, want)
		}
	}
}

func TestWithPackagesMissing(t *testing.T) {
	p := fakeBuild(t, "pillow=11.1.0\n")
	_, err := p.WithPackages([]string{"pillow", "pandas"})
	if err == nil || !strings.Contains(err.Error(), `"pandas" is not in this build (it has: pillow 11.1.0)`) ||
		!strings.Contains(err.Error(), "opensandbox") {
		t.Fatalf("pandas: err = %v", err)
	}
	// A build without a data interpreter has no packages at all.
	_, err = fakeBuild(t, "").WithPackages([]string{"pillow"})
	if err == nil || !strings.Contains(err.Error(), "it has: none") {
		t.Fatalf("no data build: err = %v", err)
	}
}

func TestImportNames(t *testing.T) {
	if got := ImportNames([]string{"Pillow", "PIL", "numpy"}); strings.Join(got, ",") != "PIL,numpy" {
		t.Fatalf("got %v", got)
	}
}
