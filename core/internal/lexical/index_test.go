package lexical

import (
	"fmt"
	"reflect"
	"testing"
)

func TestTermsSplitsIdentifiers(t *testing.T) {
	got := Terms("parseCsvRows(path: str) -> dict — reads the files of a_b_table")
	want := []string{"parse", "csv", "row", "path", "dict", "read", "file", "b", "table"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Terms = %q, want %q", got, want)
	}
}

func TestSearchRanksTheNameAboveTheBody(t *testing.T) {
	x := New()
	x.Add(Field{"currency_convert", 3}, Field{"convert an amount between currencies", 1})
	x.Add(Field{"mean_of_rows", 3}, Field{"mean of a column; can convert units first", 1})
	x.Add(Field{"plot_bars", 3}, Field{"draw a bar chart", 1})
	hits := x.Search("convert the currency of an amount", 10, nil)
	if len(hits) != 2 || hits[0].Doc != 0 || hits[1].Doc != 1 {
		t.Fatalf("hits = %+v, want doc 0 then doc 1 (doc 2 shares no term)", hits)
	}
	if hits := x.Search("the of and", 10, nil); hits != nil {
		t.Fatalf("a query of stop words matched %+v", hits)
	}
	if hits := x.Search("convert", 10, func(d int) bool { return d != 0 }); len(hits) != 1 || hits[0].Doc != 1 {
		t.Fatalf("filtered hits = %+v, want only doc 1", hits)
	}
}

func TestSearchFindsOneAmongThousands(t *testing.T) {
	x := New()
	for i := range 2000 {
		x.Add(Field{fmt.Sprintf("skill_%d", i), 3}, Field{"compute a statistic over the rows of a table", 1})
	}
	target := x.Add(Field{"haversine_distance", 3}, Field{"great-circle distance between two coordinates", 1})
	hits := x.Search("distance between coordinates", 5, nil)
	if len(hits) == 0 || hits[0].Doc != target {
		t.Fatalf("hits = %+v, want doc %d first", hits, target)
	}
}

func BenchmarkSearch2000(b *testing.B) {
	x := New()
	for i := range 2000 {
		x.Add(Field{fmt.Sprintf("skill_%d_parse", i), 3}, Field{fmt.Sprintf("run(path, n) -> dict — statistic %d over rows, currency %d", i, i%7), 1})
	}
	b.ResetTimer()
	for b.Loop() {
		x.Search("statistic 1234 currency", 10, nil)
	}
}

func BenchmarkBuild2000(b *testing.B) {
	for b.Loop() {
		x := New()
		for i := range 2000 {
			x.Add(Field{fmt.Sprintf("skill_%d_parse", i), 3}, Field{fmt.Sprintf("run(path, n) -> dict — statistic %d over rows, currency %d", i, i%7), 1})
		}
	}
}
