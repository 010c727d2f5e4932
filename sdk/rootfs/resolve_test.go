package rootfs

import (
	"slices"
	"strings"
	"testing"
)

// fakeIndex is a small Packages file exercising every kind of relation
// the resolver handles.
const fakeIndex = `Package: libc6
Version: 2.36-9
Architecture: amd64
Priority: optional
SHA256: aa
Size: 10
Description: C library
 continuation line: ignored

Package: libc6
Version: 2.36-8
Architecture: amd64

Package: libc6
Version: 2.40-1
Architecture: arm64

Package: python3
Version: 3.11.2-1
Architecture: amd64
Pre-Depends: python3-minimal (= 3.11.2-1)
Depends: python3.11 (>= 3.11.2), libpython3-stdlib (= 3.11.2-1)

Package: python3-minimal
Version: 3.11.2-1
Architecture: amd64
Pre-Depends: libc6 (>= 2.35)
Depends: dpkg (>= 1.13.20)

Package: python3.11
Version: 3.11.2-6
Architecture: amd64
Depends: libc6 (>= 2.34), media-types | mime-support

Package: libpython3-stdlib
Version: 3.11.2-1
Architecture: amd64
Depends: libpython3.11-stdlib, tzdata | tzdata-legacy

Package: libpython3.11-stdlib
Version: 3.11.2-6
Architecture: amd64
Depends: libc6 (>= 2.34), readline-common, libfoo:any

Package: readline-common
Version: 8.2-1
Architecture: all
Depends: dpkg (>= 1.15.4) | install-info

Package: dpkg
Version: 1.21.22
Architecture: amd64
Essential: yes
Priority: required
Pre-Depends: libc6 (>= 2.34), tar

Package: tar
Version: 1.34
Architecture: amd64
Essential: yes
Priority: required

Package: install-info
Version: 6.8
Architecture: amd64

Package: media-types
Version: 8.0
Architecture: all

Package: mime-support
Version: 3.66
Architecture: all

Package: tzdata
Version: 2024a
Architecture: all

Package: libfoo
Version: 1.0
Architecture: amd64
Multi-Arch: same

Package: awk-user
Version: 1
Architecture: all
Depends: awk

Package: mawk
Version: 1.3.4
Architecture: amd64
Priority: required
Provides: awk

Package: gawk
Version: 5.2
Architecture: amd64
Priority: optional
Provides: awk

Package: original-awk
Version: 2012
Architecture: amd64
Priority: optional
Provides: awk

Package: gawk-user
Version: 1
Architecture: all
Depends: gawk, awk

Package: versioned-user
Version: 1
Architecture: all
Depends: libz-dev (>= 1.2)

Package: zlib1g-dev
Version: 1:1.2.13
Architecture: amd64
Provides: libz-dev (= 1:1.2.13)

Package: old-z
Version: 1
Architecture: amd64
Provides: libz-dev

Package: foreign-user
Version: 1
Architecture: all
Depends: libbar:i386 | libfoo

Package: restricted
Version: 1
Architecture: amd64
Depends: missing-on-amd64 [!amd64], libfoo

Package: broken
Version: 1
Architecture: all
Depends: python3-minimal, libc6 (>= 3.0) | nothing-at-all

Package: real-and-virtual
Version: 1
Architecture: all
Depends: mail-transport-agent

Package: mail-transport-agent
Version: 2
Architecture: all

Package: exim
Version: 4
Architecture: amd64
Priority: standard
Provides: mail-transport-agent
`

func TestResolve(t *testing.T) {
	idx, err := ParseIndex(strings.NewReader(fakeIndex), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		roots   []string
		exclude []string
		want    []string // name=version
		wantErr string
	}{
		{
			name:  "leaf: the native, highest version",
			roots: []string{"libc6"},
			want:  []string{"libc6=2.36-9"},
		},
		{
			name:  "pre-depends, versioned depends, first alternative, multi-arch qualifier",
			roots: []string{"python3"},
			want: []string{"dpkg=1.21.22", "libc6=2.36-9", "libfoo=1.0", "libpython3-stdlib=3.11.2-1", "libpython3.11-stdlib=3.11.2-6",
				"media-types=8.0", "python3=3.11.2-1", "python3-minimal=3.11.2-1", "python3.11=3.11.2-6",
				"readline-common=8.2-1", "tar=1.34", "tzdata=2024a"},
		},
		{
			// dpkg excluded: it satisfies "dpkg | install-info" as if
			// installed, and its own dependency (tar) is not followed.
			name:    "exclude counts as installed",
			roots:   []string{"python3"},
			exclude: []string{"dpk?"},
			want: []string{"libc6=2.36-9", "libfoo=1.0", "libpython3-stdlib=3.11.2-1", "libpython3.11-stdlib=3.11.2-6",
				"media-types=8.0", "python3=3.11.2-1", "python3-minimal=3.11.2-1", "python3.11=3.11.2-6",
				"readline-common=8.2-1", "tzdata=2024a"},
		},
		{
			name:    "an excluded later alternative satisfies the group",
			roots:   []string{"python3.11"},
			exclude: []string{"mime-support"},
			want:    []string{"libc6=2.36-9", "python3.11=3.11.2-6"},
		},
		{
			name:  "virtual: the most important provider",
			roots: []string{"awk-user"},
			want:  []string{"awk-user=1", "mawk=1.3.4"},
		},
		{
			name:  "virtual: a provider selected anyway wins",
			roots: []string{"gawk-user"},
			want:  []string{"gawk=5.2", "gawk-user=1"},
		},
		{
			name:  "virtual root",
			roots: []string{"awk"},
			want:  []string{"mawk=1.3.4"},
		},
		{
			name:  "versioned dependency needs a versioned Provides",
			roots: []string{"versioned-user"},
			want:  []string{"versioned-user=1", "zlib1g-dev=1:1.2.13"},
		},
		{
			name:  "a real package comes before providers of its name",
			roots: []string{"real-and-virtual"},
			want:  []string{"mail-transport-agent=2", "real-and-virtual=1"},
		},
		{
			name:  "a foreign-architecture alternative is skipped",
			roots: []string{"foreign-user"},
			want:  []string{"foreign-user=1", "libfoo=1.0"},
		},
		{
			name:  "architecture restrictions",
			roots: []string{"restricted"},
			want:  []string{"libfoo=1.0", "restricted=1"},
		},
		{
			name:    "unsatisfiable: the chain and the candidate are named",
			roots:   []string{"broken"},
			wantErr: "nothing satisfies libc6 (>= 3.0) (candidate 2.36-9) | nothing-at-all (unknown), needed by broken <- requested",
		},
		{
			name:    "unknown root",
			roots:   []string{"no-such-package"},
			wantErr: "nothing satisfies no-such-package (unknown)",
		},
		{
			name:    "a malformed root",
			roots:   []string{"python3 (>= 3"},
			wantErr: `requested package "python3 (>= 3": unterminated version constraint`,
		},
		{
			name:    "an excluded root is a contradiction",
			roots:   []string{"dpkg"},
			exclude: []string{"dpkg"},
			wantErr: "requested package dpkg is excluded",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			pkgs, err := idx.Resolve(c.roots, Exclude(c.exclude...))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pkgs {
				got = append(got, p.Name+"="+p.Version)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

// The result must not depend on the order roots are given in when no
// choice hinges on it, and must be identical run to run.
func TestResolveDeterministic(t *testing.T) {
	idx, err := ParseIndex(strings.NewReader(fakeIndex), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	a, err := idx.Resolve([]string{"python3", "awk-user", "versioned-user"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := idx.Resolve([]string{"versioned-user", "awk-user", "python3"})
	if err != nil {
		t.Fatal(err)
	}
	if Key(a) != Key(b) {
		t.Fatalf("root order changed the result:\n%v\n%v", a, b)
	}
}

func TestParseIndexFields(t *testing.T) {
	idx, err := ParseIndex(strings.NewReader(fakeIndex), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := idx.Package("libc6")
	if !ok || p.Version != "2.36-9" || p.SHA256 != "aa" || p.Size != 10 || p.Arch != "amd64" {
		t.Fatalf("libc6: %+v", p)
	}
	d, _ := idx.Package("dpkg")
	if !d.Essential || d.Priority != "required" || !slices.Equal(d.Dependencies(), []string{"libc6", "tar"}) {
		t.Fatalf("dpkg: %+v deps %v", d, d.Dependencies())
	}
	if _, ok := idx.Package("awk"); ok {
		t.Fatal("a virtual name is not a package")
	}
	if _, err := ParseIndex(strings.NewReader("Package: x\nno colon here\n"), "amd64"); err == nil {
		t.Fatal("accepted a malformed line")
	}
	if _, err := ParseIndex(strings.NewReader("Package: x\n\n"), "amd64"); err == nil {
		t.Fatal("accepted a stanza without Version")
	}
}
