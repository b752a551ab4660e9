package main

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// readings says, for each drill, what its charts show: the one thing to
// look at (docs/chaos.md, "Reading it", has the long version).
var readings = map[string]string{
	"transient-5xx":   "Every retrying client absorbs the 503s at the same load; the latency tail is the difference: outbound's jittered waits (100-200 ms first) against fixed 1 s (go-retryablehttp) and 200 ms plus up to 1 s (article).",
	"429-burst":       "Load on a server that asked for a pause: the article's policy ignores Retry-After and comes back early; outbound's rate limiter turns one 429 into a pause for every call and sends the fewest requests into the burst.",
	"full-outage":     "Nobody can succeed: look at the requests per call sent to the dead upstream (outbound's breaker and retry budget: well under one) and at who keeps callers waiting past the budget.",
	"outage-recovery": "After 3 s the upstream heals: who gets every call through, at what load, and without passing the budget.",
	"partial-outage":  "One host of three is dead: everyone gets the two healthy thirds; look at the load each client puts on the dead host and at the latency past the budget.",
	"latency":         "Hung attempts: the bare client loses the call at its timeout, go-retryablehttp waits until the drill abandons it; outbound gives up on the hung attempt and retries inside the budget.",
	"stragglers":      "A slow tail, not failures: only a hedge cuts it. Look at the far right of the latency curves (p99, p99.9) and at the extra requests the hedges cost.",
	"resets":          "POSTs without Idempotency-Key: the peers' 100 % comes from sending orders twice; outbound does not resend a POST that may have been processed (RFC 9110 §9.2.2).",
	"resets-keyed":    "The same resets against a server that honours Idempotency-Key: outbound retries with one key per call and gets every POST through, processed once.",
	"stalls":          "Bodies that stop after the headers: look at the latency curves against the budget line; outbound's body idle timeout ends a stalled call inside the budget.",
	"overload":        "A closed loop over an upstream of fixed capacity: success and load show who makes the upstream shed; the latency curve shows what the callers wait.",
}

// reading is the "what to look at" line of drill name.
func reading(name string) string {
	if r, ok := readings[name]; ok {
		return r
	}
	return "Compare success, load on the upstream and the latency tail against the budget."
}

// clientColors are the colours of the clients, in the order of
// allClients, the same in every chart (the Okabe–Ito palette, told apart
// with colour-blindness too).
var clientColors = []color.RGBA{
	{R: 0x99, G: 0x99, B: 0x99, A: 0xff}, // bare: grey
	{R: 0xe6, G: 0x9f, B: 0x00, A: 0xff}, // go-retryablehttp: orange
	{R: 0x56, G: 0xb4, B: 0xe9, A: 0xff}, // article: sky blue
	{R: 0x00, G: 0x72, B: 0xb2, A: 0xff}, // outbound: blue
}

// palette maps client names to their colour and label.
type palette struct {
	color map[string]color.Color
	label map[string]string
}

func newPalette() palette {
	p := palette{color: map[string]color.Color{}, label: map[string]string{}}
	for i, c := range allClients() {
		p.color[c.name] = clientColors[i%len(clientColors)]
		p.label[c.name] = c.label
	}
	return p
}

func (p palette) colorOf(client string) color.Color {
	if c, ok := p.color[client]; ok {
		return c
	}
	return color.Black
}

func (p palette) labelOf(client string) string {
	if l, ok := p.label[client]; ok {
		return l
	}
	return client
}

// Chart sizes: the bar panels side by side, the latency chart under them.
const (
	chartWidth   = 7.5 * vg.Inch
	barsHeight   = 2.6 * vg.Inch
	latencyHeigh = 3.2 * vg.Inch
	titleHeight  = 0.45 * vg.Inch
	legendWidth  = 1.6 * vg.Inch
	chartGap     = 0.15 * vg.Inch
)

// drillCharts are the charts of one drill. The latency chart's legend is
// drawn beside it rather than inside, where it would hide the curves.
type drillCharts struct {
	success, load, latency *plot.Plot
	legend                 plot.Legend
}

// chartsFor draws the charts of drill sc with budget marked on the latency
// axis.
func chartsFor(sc ScenarioResult, budget time.Duration, pal palette) drillCharts {
	lat, legend := latencyPlot(sc, budget, pal)
	return drillCharts{
		success: barPlot(sc, pal, "success", "% of calls", func(r Result) float64 { return 100 * r.SuccessRate }, "%.1f%%", 100),
		load:    barPlot(sc, pal, "upstream requests per call", "requests / call", func(r Result) float64 { return r.RequestsPerCall }, "%.2f", 1),
		latency: lat, legend: legend,
	}
}

// newPlot is a plot in Liberation Sans, which reads better than the
// library's default serif at small sizes.
func newPlot() *plot.Plot {
	p := plot.New()
	for _, st := range []*text.Style{&p.Title.TextStyle, &p.X.Label.TextStyle, &p.Y.Label.TextStyle,
		&p.X.Tick.Label, &p.Y.Tick.Label, &p.Legend.TextStyle} {
		st.Font.Variant = "Sans"
	}
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.Title.Padding = vg.Points(6)
	return p
}

// barPlot has one bar per client, in the client's colour, with its value
// written above it. The value axis reaches at least floor (100 for a
// percentage, so a drill where nothing succeeds still reads as 0 of 100).
func barPlot(sc ScenarioResult, pal palette, title, ylabel string, value func(Result) float64, format string, floor float64) *plot.Plot {
	p := newPlot()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.X.Tick.Label.Font.Size = vg.Points(9)
	p.Y.Min = 0
	names := make([]string, len(sc.Clients))
	top := 0.0
	for i, r := range sc.Clients {
		v := value(r)
		top = math.Max(top, v)
		names[i] = shortName(r.Client)
		bc, err := plotter.NewBarChart(plotter.Values{v}, vg.Points(28))
		if err != nil {
			continue // a NaN or infinite value: no bar rather than no chart
		}
		bc.XMin = float64(i)
		bc.Color = pal.colorOf(r.Client)
		bc.LineStyle.Width = 0
		p.Add(bc)
		if lb, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    plotter.XYs{{X: float64(i), Y: v}},
			Labels: []string{fmt.Sprintf(format, v)},
		}); err == nil {
			for j := range lb.TextStyle {
				lb.TextStyle[j].Font.Variant = "Sans"
				lb.TextStyle[j].Font.Size = vg.Points(8)
				lb.TextStyle[j].XAlign = draw.XCenter
			}
			lb.Offset = vg.Point{Y: vg.Points(3)}
			p.Add(lb)
		}
	}
	// Room above the tallest bar for its label.
	p.Y.Max = math.Max(top, floor) * 1.18
	if len(names) > 0 {
		p.NominalX(names...)
		// Half a bar slot of margin each side, so the outer labels fit.
		p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	}
	return p
}

// shortName is the client's name on a bar axis, where four full labels do
// not fit.
func shortName(client string) string {
	if client == "retryablehttp" {
		return "go-retryablehttp"
	}
	return client
}

// minLatencyMS is the bottom of the log latency axis: a loopback call
// takes tens of microseconds, and a log axis cannot show zero.
const minLatencyMS = 0.05

// curvePoints is about the most points drawn per client: enough for a
// smooth curve, few enough to keep the page small for a drill of thousands
// of calls.
const curvePoints = 400

// latencyPlot is the distribution of the calls' latencies per client as a
// percentile plot (as HdrHistogram draws one): latency on a log axis against
// the percentile on a "nines" axis (50 %, 90 %, 99 %, 99.9 %), so the tail,
// where retries, hangs and the budget show, gets as much room as the
// median. The budget is the dashed line.
func latencyPlot(sc ScenarioResult, budget time.Duration, pal palette) (*plot.Plot, plot.Legend) {
	p := newPlot()
	p.Title.Text = "latency by percentile of the calls (both axes log)"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = latencyTicks{}
	p.X.Scale = ninesScale{}
	legend := plot.NewLegend()
	legend.TextStyle.Font.Variant = "Sans"
	legend.TextStyle.Font.Size = vg.Points(9)
	legend.Padding = vg.Points(5)
	legend.Top, legend.Left = true, true
	legend.YOffs = -vg.Points(30)
	p.Add(plotter.NewGrid())
	n := 0
	for _, r := range sc.Clients {
		n = max(n, len(r.latencies))
	}
	right := ninesEnd(n)
	p.X.Tick.Marker = ninesTicks{}
	// The budget first, so a curve that ends on it (a client whose timeout
	// is the budget) is drawn over it.
	bl, err := plotter.NewLine(plotter.XYs{{X: 0, Y: ms(budget)}, {X: right, Y: ms(budget)}})
	if err == nil {
		bl.Color = color.Black
		bl.Width = vg.Points(1.5)
		bl.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(bl)
	}
	maxMS, minMS := ms(budget), ms(budget)
	for _, r := range sc.Clients {
		xys := percentileCurve(r.latencies, right)
		if len(xys) == 0 {
			continue
		}
		maxMS = math.Max(maxMS, xys[len(xys)-1].Y)
		minMS = math.Min(minMS, xys[0].Y)
		l, err := plotter.NewLine(xys)
		if err != nil {
			continue
		}
		l.StepStyle = plotter.PostStep
		l.Color = pal.colorOf(r.Client)
		l.Width = vg.Points(2)
		p.Add(l)
		legend.Add(pal.labelOf(r.Client), l)
	}
	if bl != nil {
		legend.Add("budget "+budget.String(), bl)
	}
	p.X.Min, p.X.Max = 0, right
	p.Y.Min, p.Y.Max = math.Max(minLatencyMS, minMS/2), maxMS*1.5
	return p, legend
}

// ninesEnd is the right end of the percentile axis for n calls: the first
// of 99 %, 99.9 %, 99.99 % past the rank of the slowest call, so it has a
// step of its own.
func ninesEnd(n int) float64 {
	for _, q := range []float64{0.99, 0.999} {
		if float64(n) <= 1/(1-q) {
			return q
		}
	}
	return 0.9999
}

// percentileCurve is the latency at each percentile of sorted (in ms; the
// call of rank i, from 0, holds percentiles i/n to (i+1)/n), up to right,
// thinned to about curvePoints by their position on the nines axis, so the
// tail keeps every call and the middle one in many.
func percentileCurve(sorted []time.Duration, right float64) plotter.XYs {
	n := len(sorted)
	if n == 0 {
		return nil
	}
	y := func(i int) float64 { return math.Max(ms(sorted[i]), minLatencyMS) }
	span := nines(right)
	xys := plotter.XYs{{X: 0, Y: y(0)}}
	last := 0.0
	for i := 1; i < n; i++ {
		q := float64(i) / float64(n)
		if q >= right {
			break
		}
		if x := nines(q); x-last >= span/curvePoints || i >= n-1 {
			xys = append(xys, plotter.XY{X: q, Y: y(i)})
			last = x
		}
	}
	if xys[len(xys)-1].Y != y(n-1) { // the slowest call, wherever the axis ends
		xys = append(xys, plotter.XY{X: math.Min(float64(n-1)/float64(n), right), Y: y(n - 1)})
	}
	return append(xys, plotter.XY{X: right, Y: y(n - 1)})
}

// nines is the position of percentile q on the nines axis: 0 for 0 %, 1
// for 90 %, 2 for 99 %, 3 for 99.9 %.
func nines(q float64) float64 { return -math.Log10(1 - q) }

// ninesScale places percentiles on the nines axis.
type ninesScale struct{}

func (ninesScale) Normalize(lo, hi, x float64) float64 {
	a, b := nines(lo), nines(hi)
	if b <= a {
		return 0
	}
	return (nines(math.Min(x, hi)) - a) / (b - a)
}

// ninesTicks labels 0 %, 50 %, 90 %, 99 % and so on up to the axis' end.
type ninesTicks struct{}

func (ninesTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for _, q := range []float64{0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999} {
		if q < lo || q > hi+1e-12 {
			continue
		}
		label := ""
		switch q {
		case 0, 0.5, 0.9, 0.99, 0.999, 0.9999:
			label = strconv.FormatFloat(100*q, 'f', -1, 64) + "%"
		}
		ts = append(ts, plot.Tick{Value: q, Label: label})
	}
	return ts
}

// latencyTicks marks the powers of ten of a millisecond axis, labelled in
// the scorecard's units (0.1ms, 10ms, 1s, 10s).
type latencyTicks struct{}

func (latencyTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi*1.0001; e++ {
		v := math.Pow(10, e)
		if v >= lo*0.9999 {
			ts = append(ts, plot.Tick{Value: v, Label: tickLabel(v)})
		}
		for _, m := range []float64{2, 5} {
			if w := m * v; w >= lo && w <= hi {
				ts = append(ts, plot.Tick{Value: w}) // minor
			}
		}
	}
	return ts
}

func tickLabel(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%gms", v)
	case v < 1000:
		return fmt.Sprintf("%.0fms", v)
	}
	return fmt.Sprintf("%gs", v/1000)
}

// svg renders p as an SVG element of size w×h, ready to inline in HTML (no
// XML prologue).
func svg(draw func(draw.Canvas), w, h vg.Length) (template.HTML, error) {
	c := vgsvg.New(w, h)
	draw(drawCanvas(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", err
	}
	s := buf.String()
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	// The library's SVG is generated from numbers and our own escaped
	// labels, not from input a reader controls.
	return template.HTML(s), nil
}

func drawCanvas(c vg.CanvasSizer) draw.Canvas { return draw.New(c) }

// drawBars draws the success and load panels side by side.
func (dc drillCharts) drawBars(c draw.Canvas) {
	mid := (c.Max.X - c.Min.X) / 2
	dc.success.Draw(draw.Crop(c, 0, -mid, 0, 0))
	dc.load.Draw(draw.Crop(c, mid, 0, 0, 0))
}

// drawLatency draws the latency chart with its legend on the right.
func (dc drillCharts) drawLatency(c draw.Canvas) {
	dc.latency.Draw(draw.Crop(c, 0, -legendWidth, 0, 0))
	dc.legend.Draw(draw.Crop(c, c.Max.X-c.Min.X-legendWidth+vg.Points(10), 0, 0, 0))
}

// drawAll draws one drill's image for -png: a title line, the two bar
// panels, and the latency chart under them.
func (dc drillCharts) drawAll(c draw.Canvas, title string) {
	sty := text.Style{
		Color:   color.Black,
		Font:    font.From(font.Font{Typeface: "Liberation", Variant: "Sans", Weight: 700}, vg.Points(12)),
		XAlign:  draw.XLeft,
		YAlign:  draw.YTop,
		Handler: plot.DefaultTextHandler,
	}
	c.FillText(sty, vg.Point{X: c.Min.X + vg.Points(8), Y: c.Max.Y - vg.Points(8)}, title)
	body := draw.Crop(c, 0, 0, 0, -titleHeight)
	split := body.Max.Y - barsHeight
	dc.drawBars(draw.Crop(body, 0, 0, split-body.Min.Y, 0))
	dc.drawLatency(draw.Crop(body, 0, 0, 0, split-body.Max.Y-chartGap))
}

// htmlDrill is one drill's section of the page.
type htmlDrill struct {
	Name, Description, Reading string
	Bars, Latency              template.HTML
	Rows                       []htmlRow
}

type htmlRow struct {
	Client, Color                   string
	Success, ReqPerCall, P50, P99   string
	Max                             string
	OverBudget, Impolite, Duplicate int
}

// writeHTML writes the report as one self-contained HTML page: inline SVG
// charts and an inline stylesheet, nothing fetched from the network, no
// script.
func writeHTML(w io.Writer, rep Report) error {
	pal := newPalette()
	budget := time.Duration(rep.BudgetMS * float64(time.Millisecond))
	page := struct {
		Summary string
		Drills  []htmlDrill
	}{Summary: fmt.Sprintf("seed %d, budget %v, %d calls per client per open-loop drill, time scale %g, %.1f s",
		rep.Seed, budget, rep.Calls, rep.Timescale, rep.ElapsedMS/1000)}
	for _, sc := range rep.Scenarios {
		dc := chartsFor(sc, budget, pal)
		bars, err := svg(dc.drawBars, chartWidth, barsHeight)
		if err != nil {
			return err
		}
		lat, err := svg(dc.drawLatency, chartWidth, latencyHeigh)
		if err != nil {
			return err
		}
		d := htmlDrill{Name: sc.Name, Description: sc.Description, Reading: reading(sc.Name), Bars: bars, Latency: lat}
		for _, r := range sc.Clients {
			cr, cg, cb, _ := pal.colorOf(r.Client).RGBA()
			d.Rows = append(d.Rows, htmlRow{
				Client: pal.labelOf(r.Client), Color: fmt.Sprintf("#%02x%02x%02x", cr>>8, cg>>8, cb>>8),
				Success: fmt.Sprintf("%.1f%%", 100*r.SuccessRate), ReqPerCall: fmt.Sprintf("%.2f", r.RequestsPerCall),
				P50: fmtMS(r.P50MS), P99: fmtMS(r.P99MS), Max: fmtMS(r.MaxMS),
				OverBudget: r.OverBudget, Impolite: r.PolitenessViolations, Duplicate: r.DuplicateProcessing,
			})
		}
		page.Drills = append(page.Drills, d)
	}
	return pageTemplate.Execute(w, page)
}

// writePNGs writes one PNG per drill into dir, named after the drill.
func writePNGs(dir string, rep Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pal := newPalette()
	budget := time.Duration(rep.BudgetMS * float64(time.Millisecond))
	for _, sc := range rep.Scenarios {
		dc := chartsFor(sc, budget, pal)
		c := vgimg.PngCanvas{Canvas: vgimg.NewWith(
			vgimg.UseWH(chartWidth, titleHeight+barsHeight+chartGap+latencyHeigh), vgimg.UseDPI(110))}
		dc.drawAll(draw.New(c), sc.Name+": "+sc.Description)
		var buf bytes.Buffer
		if _, err := c.WriteTo(&buf); err != nil {
			return fmt.Errorf("%s: %w", sc.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, sc.Name+".png"), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeReports writes the -html page and the -png charts the flags ask for.
func writeReports(o options, rep Report) error {
	if o.html != "" {
		var buf bytes.Buffer
		if err := writeHTML(&buf, rep); err != nil {
			return fmt.Errorf("-html: %w", err)
		}
		if err := os.WriteFile(o.html, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("-html: %w", err)
		}
	}
	if o.png != "" {
		if err := writePNGs(o.png, rep); err != nil {
			return fmt.Errorf("-png: %w", err)
		}
	}
	return nil
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>outbound-chaos scorecard</title>
<style>
body { font-family: "Liberation Sans", Arial, Helvetica, sans-serif; margin: 2em auto; max-width: 60em; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin: 0 0 0.3em; font-family: "Liberation Mono", monospace; }
section.drill { border-top: 1px solid #ccc; padding: 1.2em 0; }
p.desc { margin: 0.2em 0; }
p.look { margin: 0.4em 0 0.8em; background: #f4f7fb; border-left: 4px solid #0072b2; padding: 0.4em 0.7em; }
figure.chart { margin: 0.5em 0; }
figure.chart svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.15em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 1px solid #999; }
span.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; vertical-align: -0.05em; }
</style>
</head>
<body>
<h1>outbound-chaos scorecard</h1>
<p>{{.Summary}}. Each drill plays the same seeded faults against every client. Columns and readings: docs/chaos.md, section Scorecard.</p>
{{range .Drills}}<section class="drill" id="{{.Name}}">
<h2>{{.Name}}</h2>
<p class="desc">{{.Description}}</p>
<p class="look"><b>What to look at:</b> {{.Reading}}</p>
<figure class="chart bars">{{.Bars}}</figure>
<figure class="chart latency">{{.Latency}}</figure>
<table>
<thead><tr><th>client</th><th>success</th><th>req/call</th><th>p50</th><th>p99</th><th>max</th><th>over budget</th><th>impolite</th><th>dup POST</th></tr></thead>
<tbody>{{range .Rows}}
<tr><td><span class="swatch" style="background: {{.Color}}"></span>{{.Client}}</td><td>{{.Success}}</td><td>{{.ReqPerCall}}</td><td>{{.P50}}</td><td>{{.P99}}</td><td>{{.Max}}</td><td>{{.OverBudget}}</td><td>{{.Impolite}}</td><td>{{.Duplicate}}</td></tr>{{end}}
</tbody>
</table>
</section>
{{end}}</body>
</html>
`))
