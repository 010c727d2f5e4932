package artefacts

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DataDirName is the directory inside a build that holds the second
// interpreter, the one with the optional packages linked in (python/build.sh
// builds both; the default one carries the stdlib only, which keeps its
// start-up and memory small).
const DataDirName = "data"

// PackagesFile lists the data interpreter's packages, one name=version a line.
const PackagesFile = "packages.txt"

// notBuilt names packages asked for that no build of this plugin has, with
// the reason and where they are available instead.
var notBuilt = map[string]string{
	"numpy":  "numpy and pandas are not built for WASI: Debian's numpy source package cannot be fetched here (plugins/wasm/python/README.md); the opensandbox backend has both (runtime { backend = \"opensandbox\" })",
	"pandas": "numpy and pandas are not built for WASI: Debian's numpy source package cannot be fetched here (plugins/wasm/python/README.md); the opensandbox backend has both (runtime { backend = \"opensandbox\" })",
}

// aliases maps import names to package names.
var aliases = map[string]string{"pil": "pillow"}

// WithPackages returns the build that carries every named package: p itself
// when none is named, else the data interpreter in p's data/ directory.
func (p *Python) WithPackages(names []string) (*Python, error) {
	if len(names) == 0 {
		return p, nil
	}
	dir := filepath.Join(p.Dir, DataDirName)
	have, err := readPackages(filepath.Join(dir, PackagesFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var missing []string
	for _, n := range names {
		key := strings.ToLower(strings.TrimSpace(n))
		if a, ok := aliases[key]; ok {
			key = a
		}
		if _, ok := have[key]; ok {
			continue
		}
		msg := fmt.Sprintf("%q is not in this build (it has: %s)", n, available(have))
		if why, ok := notBuilt[key]; ok {
			msg += ": " + why
		}
		missing = append(missing, msg)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("packages: %s", strings.Join(missing, "; "))
	}
	data, err := Check(dir)
	if err != nil {
		return nil, fmt.Errorf("packages: %w", err)
	}
	return data, nil
}

// readPackages reads a PackagesFile into name -> version.
func readPackages(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("package list: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		name, version, _ := strings.Cut(line, "=")
		out[strings.ToLower(name)] = version
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("package list %s: %w", path, err)
	}
	return out, nil
}

func available(have map[string]string) string {
	if len(have) == 0 {
		return "none"
	}
	var s []string
	for n, v := range have {
		s = append(s, n+" "+v)
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

// importNames are the modules packages are imported as, where the name differs.
var importNames = map[string]string{"pillow": "PIL"}

// ImportNames are the top-level modules of the named packages (the
// backend's Capabilities.Libraries), sorted.
func ImportNames(names []string) []string {
	var out []string
	for _, n := range names {
		key := strings.ToLower(strings.TrimSpace(n))
		if a, ok := aliases[key]; ok {
			key = a
		}
		if m, ok := importNames[key]; ok {
			key = m
		}
		out = append(out, key)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
