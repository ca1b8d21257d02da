/**
 * The dashboard's one HTML page and its stylesheet, served by dashboard-server.ts. The page is
 * a shell: cli/dashboard/web/main.ts (compiled for the browser) fills it from the event stream.
 * Colour is never the only signal: every tile says its state, and unreachable, drift and
 * maintenance are words as well as marks.
 */

export function pageHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clusterctl dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/dashboard.css">
<script type="module" src="/assets/js/cli/dashboard/web/main.js"></script>
</head>
<body>
<header>
  <h1><a href="#/">clusterctl dashboard</a></h1>
  <nav><a href="#/" data-view="fleet">Fleet</a><a href="#/events" data-view="events">Events</a></nav>
  <span id="live" class="live down" role="status">connecting…</span>
</header>
<section id="counts" aria-label="nodes by state"></section>
<main id="view-fleet" data-view="fleet">
  <div class="toolbar">
    <label>Filter <input id="filter" size="32" placeholder="label selector, as -l: rack=r1,role!=gpu" spellcheck="false" autocomplete="off"></label>
    <label>Group by <select id="group-by"><option value="group">group</option><option value="state">state</option></select></label>
    <span id="shown"></span>
    <span id="filter-error" class="error" role="alert"></span>
  </div>
  <div class="columns">
    <div id="grid" aria-label="nodes"></div>
    <aside>
      <h2>Jobs</h2>
      <div id="jobs"></div>
      <h2>Latest events</h2>
      <ol id="recent-events" class="events"></ol>
    </aside>
  </div>
</main>
<main id="view-node" data-view="node" hidden></main>
<main id="view-job" data-view="job" hidden></main>
<main id="view-events" data-view="events" hidden>
  <h2>Event stream</h2>
  <table class="events-table"><thead><tr><th>Seq</th><th>At</th><th>Type</th><th>Node</th><th>Job</th><th>Change</th><th>Actor</th><th>Message</th></tr></thead><tbody id="all-events"></tbody></table>
</main>
</body>
</html>
`;
}

export const PAGE_CSS = `
:root { --bg: #f6f7f9; --fg: #1d2430; --muted: #5c6675; --line: #d5dae1; --card: #fff; font-family: system-ui, sans-serif; font-size: 14px; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); }
a { color: #1a5fb4; }
header { display: flex; align-items: center; gap: 16px; padding: 8px 16px; background: #1d2430; color: #fff; }
header h1 { font-size: 16px; margin: 0; }
header h1 a, header nav a { color: #fff; text-decoration: none; }
header nav a { margin-right: 12px; opacity: .8; }
header nav a.current { opacity: 1; text-decoration: underline; }
.live { margin-left: auto; font-size: 12px; padding: 2px 8px; border-radius: 10px; }
.live.up { background: #26a269; }
.live.down { background: #c01c28; }
#counts { display: flex; flex-wrap: wrap; gap: 6px; padding: 8px 16px; border-bottom: 1px solid var(--line); background: var(--card); }
.count { padding: 2px 8px; border-radius: 4px; border: 1px solid var(--line); }
.count b { margin-left: 4px; }
main { padding: 8px 16px; }
.toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 16px; margin-bottom: 8px; }
.toolbar input, .toolbar select { font: inherit; padding: 2px 4px; }
.error { color: #c01c28; }
.columns { display: flex; gap: 16px; align-items: flex-start; }
#grid { flex: 1; min-width: 0; }
aside { width: 340px; flex: none; }
aside h2, main h2 { font-size: 14px; margin: 8px 0 4px; }
.section { margin-bottom: 10px; }
.section > h3 { font-size: 13px; margin: 4px 0; color: var(--muted); font-weight: 600; }
.tiles { display: flex; flex-wrap: wrap; gap: 3px; }
/* Fixed size and content-visibility: with 10,000 tiles only those on screen get their text laid out and painted. */
.tile { content-visibility: auto; contain-intrinsic-size: 118px 46px; display: block; width: 118px; height: 46px; padding: 3px 5px; border-radius: 4px; border: 2px solid transparent; color: #111; text-decoration: none; font-size: 11px; line-height: 13px; overflow: hidden; position: relative; }
.tile .id { display: block; font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.tile .st { display: block; }
.tile .marks { display: block; font-size: 10px; font-weight: 600; white-space: nowrap; overflow: hidden; }
.s-New { background: #deddda; }
.s-Discovered { background: #99c1f1; }
.s-Commissioning, .s-Upgrading, .s-Decommissioning { background: repeating-linear-gradient(135deg, #f8e45c, #f8e45c 6px, #f6d32d 6px, #f6d32d 12px); }
.s-Commissioned, .s-Upgraded { background: #8ff0a4; }
.s-Decommissioned { background: #9a9996; }
.s-Failed { background: #f66151; }
.tile.unreachable { border-style: dashed; border-color: #c01c28; opacity: .75; }
.tile.drift { border-color: #813d9c; }
/* A bar along the top, inside the padding: at the bottom it covered the marks' line, the word "maint" included. */
.tile.maint { box-shadow: inset 0 3px 0 #3d3846; }
.tile:focus, .tile:hover { outline: 2px solid #1a5fb4; }
.job { background: var(--card); border: 1px solid var(--line); border-radius: 4px; padding: 6px; margin-bottom: 6px; }
.job .title { display: flex; justify-content: space-between; gap: 6px; }
.job-state { font-weight: 600; }
.j-Succeeded { color: #26a269; }
.j-Failed { color: #c01c28; }
.j-RollingBack, .j-RolledBack, .j-Pausing, .j-Paused, .j-Cancelling, .j-Cancelled { color: #9c6d00; }
.rollback { display: grid; grid-template-columns: auto 1fr auto; gap: 2px 6px; align-items: center; font-size: 11px; color: var(--muted); }
.bar { height: 10px; background: #e6e8eb; border-radius: 3px; overflow: hidden; display: flex; margin: 3px 0; }
.bar span { display: block; height: 100%; }
.bar .ok { background: #26a269; }
.bar .bad { background: #c01c28; }
.bar .run { background: #e5a50a; }
.batches { display: grid; grid-template-columns: auto 1fr auto; gap: 2px 6px; align-items: center; font-size: 11px; color: var(--muted); }
.events { list-style: none; padding: 0; margin: 0; font-size: 12px; max-height: 50vh; overflow: auto; }
.events li { border-bottom: 1px solid var(--line); padding: 2px 0; }
.events .type, td.type { font-family: ui-monospace, monospace; }
table { border-collapse: collapse; background: var(--card); }
th, td { border: 1px solid var(--line); padding: 3px 6px; text-align: left; vertical-align: top; font-size: 12px; }
th { background: #eceff3; }
dl.record { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; background: var(--card); border: 1px solid var(--line); padding: 8px; }
dl.record dt { color: var(--muted); }
dl.record dd { margin: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.cards > div { min-width: 320px; }
pre { background: #1d2430; color: #e6e8eb; padding: 8px; overflow: auto; max-height: 40vh; font-size: 12px; margin: 0; }
.job-nodes td { white-space: pre-line; }
.muted { color: var(--muted); font-size: 12px; }
.in-sync { color: #26a269; font-weight: 600; }
.differs { color: #c01c28; font-weight: 600; }
`;
