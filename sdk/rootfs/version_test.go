package rootfs

import "testing"

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int // sign
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.10", "1.9", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0", "1.0+b1", -1},
		{"1:1.0", "2.0", 1},
		{"0:1.0", "1.0", 0},
		{"1.0-1", "1.0-2", -1},
		{"1.0-1", "1.0", 1},
		{"2.36-9+deb12u4", "2.36-9+deb12u10", -1},
		{"1.0a", "1.0+", -1},
		{"1.0~~", "1.0~", -1},
		{"3.11.2-6+deb12u9", "3.11.2-1~", 1},
		{"001", "1", 0},
	} {
		got := CompareVersions(c.a, c.b)
		if sign(got) != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want sign %d", c.a, c.b, got, c.want)
		}
		if sign(CompareVersions(c.b, c.a)) != -c.want {
			t.Errorf("CompareVersions(%q, %q) not antisymmetric", c.b, c.a)
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func TestParseRelations(t *testing.T) {
	groups, err := parseRelations("libc6 (>= 2.34), a:any | b (<< 2~) [amd64], c [!amd64], d [i386] | e <!nocheck>, f:native", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range groups {
		s := ""
		for i, r := range g {
			if i > 0 {
				s += " | "
			}
			s += r.String()
		}
		got = append(got, s)
	}
	want := []string{"libc6 (>= 2.34)", "a:any | b (<< 2~)", "e", "f:native"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("group %d: %q, want %q", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"a (>= 1", "a (1.0)", "a b"} {
		if _, err := parseRelations(bad, "amd64"); err == nil {
			t.Errorf("parseRelations(%q) accepted", bad)
		}
	}
}
