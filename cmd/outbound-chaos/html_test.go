package main

import (
	"bytes"
	"context"
	"html"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// syntheticReport is a report of every drill with made-up but plausible
// results for every client: enough to draw every chart without running a
// drill.
func syntheticReport() Report {
	r := rand.New(rand.NewPCG(1, 2))
	rep := Report{Seed: 1, Calls: 120, Concurrency: 128, BudgetMS: 10000, Timescale: 1, ElapsedMS: 42000}
	for _, sc := range allScenarios(defaultOverload()) {
		res := ScenarioResult{Name: sc.name, Description: sc.desc, Hosts: sc.hosts, Method: sc.method}
		for i, c := range allClients() {
			lat := make([]time.Duration, 120)
			for k := range lat {
				// lognormal around 1 ms, with a tail that grows with the
				// client's index, some of it past the 10 s budget
				lat[k] = time.Duration(float64(time.Millisecond) * math.Exp(r.NormFloat64()*(1+float64(i))))
			}
			slices.Sort(lat)
			res.Clients = append(res.Clients, Result{
				Client: c.name, Calls: 120, Succeeded: 120 - 10*i, SuccessRate: float64(120-10*i) / 120,
				RequestsPerCall: 1 + 0.3*float64(i), P50MS: ms(lat[60]), P99MS: ms(lat[118]), MaxMS: ms(lat[119]),
				latencies: lat,
			})
		}
		rep.Scenarios = append(rep.Scenarios, res)
	}
	return rep
}

func renderHTML(t *testing.T, rep Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := writeHTML(&buf, rep); err != nil {
		t.Fatalf("writeHTML: %v", err)
	}
	return buf.String()
}

// TestHTMLReport checks the page's structure: a section per drill, with its
// description, its reading and two inline SVG charts (the bars, the latency
// distribution with the budget), and nothing that would reach the network.
func TestHTMLReport(t *testing.T) {
	rep := syntheticReport()
	page := renderHTML(t, rep)
	sections := strings.Split(page, `<section class="drill"`)[1:]
	if len(sections) != len(rep.Scenarios) {
		t.Fatalf("%d drill sections; want one per drill (%d)", len(sections), len(rep.Scenarios))
	}
	for i, s := range sections {
		sc := rep.Scenarios[i]
		if n := strings.Count(s, "<svg"); n != 2 {
			t.Errorf("%s: %d SVG charts; want 2 (bars, latency)", sc.Name, n)
		}
		text := html.UnescapeString(s)
		for _, want := range []string{`id="` + sc.Name + `"`, sc.Description, reading(sc.Name),
			"success", "upstream requests per call", "budget 10s", "go-retryablehttp", "outbound"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: section lacks %q", sc.Name, want)
			}
		}
	}
	assertSelfContained(t, page)
}

// assertSelfContained fails if page could load anything: a script, a
// stylesheet, an image or a font by URL. The SVG namespace URIs are names,
// not fetched.
func assertSelfContained(t *testing.T, page string) {
	t.Helper()
	lower := strings.ToLower(page)
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "<object", "<embed", " src=", "href=", "url(", "@import"} {
		if strings.Contains(lower, bad) {
			t.Errorf("page contains %q: it must load nothing", bad)
		}
	}
	urls := regexp.MustCompile(`[a-z]+://[^"' )<>]*`).FindAllString(page, -1)
	for _, u := range urls {
		if u != "http://www.w3.org/2000/svg" && u != "http://www.w3.org/1999/xlink" {
			t.Errorf("page names %q; want no URL but the SVG namespaces", u)
		}
	}
}

// TestEveryDrillHasAReading keeps the "what to look at" line from falling
// back to the generic one when a drill is added.
func TestEveryDrillHasAReading(t *testing.T) {
	for _, sc := range allScenarios(defaultOverload()) {
		if _, ok := readings[sc.name]; !ok {
			t.Errorf("drill %s has no entry in readings (html.go)", sc.name)
		}
	}
}

// TestHTMLAndPNGFlags runs a small drill with -html and -png and checks
// what they write, from a real run's results.
func TestHTMLAndPNGFlags(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "r.html")
	pngs := filepath.Join(dir, "png")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-scenario", "transient-5xx", "-calls", "20", "-timescale", "0.25",
		"-clients", "bare,outbound", "-html", page, "-png", pngs}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "transient-5xx: 10 % of attempts answered 503") {
		t.Errorf("the text scorecard is no longer printed with -html:\n%s", stdout.String())
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "<svg"); n != 2 {
		t.Errorf("-html: %d charts for one drill; want 2", n)
	}
	assertSelfContained(t, string(b))
	f, err := os.Open(filepath.Join(pngs, "transient-5xx.png"))
	if err != nil {
		t.Fatalf("-png: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("-png: %v", err)
	}
	if v := luminanceSpread(img); v < 0.05 {
		t.Errorf("-png: the chart is blank (luminance standard deviation %.3f)", v)
	}
}

// luminanceSpread is the standard deviation of the pixels' luminance, from
// 0 (one flat colour: a blank image) to 0.5, over every other pixel of
// every other row (a full-page screenshot has millions).
func luminanceSpread(img image.Image) float64 {
	b := img.Bounds()
	var sum, sq float64
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			g := color.GrayModel.Convert(img.At(x, y)).(color.Gray)
			v := float64(g.Y) / 255
			sum += v
			sq += v * v
			n++
		}
	}
	if n == 0 {
		return 0
	}
	mean := sum / float64(n)
	return math.Sqrt(math.Max(sq/float64(n)-mean*mean, 0))
}

// TestHTMLInChromium opens the report in headless Chromium: the browser
// must lay out every drill's two charts at a visible size, and a
// screenshot of the page must not be blank. make test provides the browser
// (scripts/with-chromium.sh sets CHROMIUM_BIN); without it the test skips.
func TestHTMLInChromium(t *testing.T) {
	bin := os.Getenv("CHROMIUM_BIN")
	if bin == "" {
		t.Skip("CHROMIUM_BIN is not set (make test sets it: scripts/with-chromium.sh)")
	}
	rep := syntheticReport()
	dir := t.TempDir()
	file := filepath.Join(dir, "scorecard.html")
	if err := os.WriteFile(file, []byte(renderHTML(t, rep)), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // make test runs as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
	)...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	// What the browser laid out: per drill section, the size of each SVG.
	type box struct{ W, H float64 }
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	blank, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+file), chromedp.WaitVisible(chromedp.CSS("section.drill svg"))); err != nil {
		t.Fatalf("chromium: opening the report: %v", err)
	}
	drills, err := chromedp.Run(bctx, chromedp.Evaluate[map[string][]box](`(() => {
		const out = {};
		for (const s of document.querySelectorAll("section.drill")) {
			out[s.id] = [...s.querySelectorAll("svg")].map(e => {
				const r = e.getBoundingClientRect();
				return {W: r.width, H: r.height};
			});
		}
		return out;
	})()`))
	if err != nil {
		t.Fatalf("chromium: reading the layout: %v", err)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("chromium: screenshot: %v", err)
	}
	if err := chromedp.Cancel(bctx); err != nil {
		t.Logf("closing chromium: %v", err)
	}

	if len(drills) != len(rep.Scenarios) {
		t.Errorf("the browser shows %d drill sections; want %d", len(drills), len(rep.Scenarios))
	}
	for _, sc := range rep.Scenarios {
		boxes := drills[sc.Name]
		if len(boxes) != 2 {
			t.Errorf("%s: the browser shows %d charts; want 2", sc.Name, len(boxes))
		}
		for i, b := range boxes {
			if b.W < 300 || b.H < 100 {
				t.Errorf("%s: chart %d laid out at %.0f×%.0f px; want a visible chart", sc.Name, i, b.W, b.H)
			}
		}
	}

	// The blank page must read as blank, or the check below proves nothing.
	if v := screenshotSpread(t, blank); v > 0.01 {
		t.Fatalf("a blank page's screenshot has luminance spread %.3f; the blank check cannot tell", v)
	}
	if v := screenshotSpread(t, shot); v < 0.05 {
		t.Errorf("the report's screenshot is blank (luminance standard deviation %.3f)", v)
	}
	if out := os.Getenv("OUTBOUND_SCREENSHOT_DIR"); out != "" {
		if err := os.WriteFile(filepath.Join(out, "scorecard.png"), shot, 0o644); err != nil {
			t.Error(err)
		}
	}
}

func screenshotSpread(t *testing.T, b []byte) float64 {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Logf("screenshot %v, luminance spread %.3f", img.Bounds().Size(), luminanceSpread(img))
	return luminanceSpread(img)
}
