/**
 * The dashboard's single page: plain HTML, CSS and a script that draws SVG itself (no external
 * resources). It follows /events (server-sent events, one view per update) and redraws without a
 * reload. Every figure carries `data-figure` (what it is) and `data-value` (the exact number), so a
 * test can compare the page with /metrics and the metrics topic.
 */
export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ensemble-stream</title>
<style>
body{font:14px system-ui,sans-serif;margin:16px;background:#f6f7f9;color:#1d2330}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:0 0 8px}
.sub{color:#5b6475;margin-bottom:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px}
table{border-collapse:collapse;width:100%} td,th{padding:3px 6px;text-align:right;border-bottom:1px solid #eef0f3}
td:first-child,th:first-child{text-align:left}
.badge{padding:1px 6px;border-radius:8px;color:#fff;font-size:12px}
.closed{background:#2e8b57}.half-open{background:#d4a017}.open{background:#c0392b}.none{background:#9aa3b2}
.legend span{margin-right:10px;font-size:12px} .note{color:#5b6475;font-size:12px;margin-top:6px}
svg text{font-size:11px;fill:#5b6475}
</style></head><body>
<h1>ensemble-stream</h1>
<div class="sub">strategy <b id="strategy" data-figure="strategy">-</b> &middot; quality window <span id="window">-</span> &middot; last metrics record <span id="generated">-</span> &middot; updated <span id="updated">never</span> &middot; <span id="targets"></span></div>
<div class="grid">
 <div class="card"><h2>Fused results by status</h2><div id="status"></div></div>
 <div class="card"><h2>Rolling quality (latest metrics record)</h2><div id="quality"></div></div>
 <div class="card"><h2>Accuracy over time</h2><div id="chart-accuracy"></div></div>
 <div class="card"><h2>Macro-F1 over time</h2><div id="chart-macroF1"></div></div>
 <div class="card"><h2>Log loss over time (lower is better)</h2><div id="chart-logLoss"></div></div>
 <div class="card"><h2>Latency p50 / p99, ms (per model: request to prediction; ensemble: end to end)</h2><div id="latency"></div></div>
 <div class="card"><h2>Weights (configured, learned from labels)</h2><div id="weights"></div></div>
 <div class="card"><h2>Circuit breakers</h2><div id="breakers"></div><div class="note">worker: around the model call; join: whether requests wait for the model</div></div>
 <div class="card"><h2>Predictions by model and status</h2><div id="predictions"></div></div>
 <div class="card"><h2>Missing models by reason</h2><div id="missing"></div></div>
 <div class="card"><h2>Dead letters by reason</h2><div id="deadletters"></div></div>
</div>
<script>
const COLORS=['#1f77b4','#ff7f0e','#2ca02c','#9467bd','#8c564b','#e377c2','#17becf','#bcbd22','#7f7f7f'];
const esc=s=>String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const fmt=(v,d=4)=>v===null||v===undefined?'-':Number(v).toFixed(d);
const fig=(name,v,d)=>'<span data-figure="'+esc(name)+'" data-value="'+(v===null||v===undefined?'':v)+'">'+fmt(v,d)+'</span>';
function color(subjects,s){return s==='ensemble'?'#111':COLORS[subjects.filter(x=>x!=='ensemble').indexOf(s)%COLORS.length]}
function bars(rows,opts={}){ // rows: [{label,value,figure,color}]
  if(rows.length===0)return '<div class="note">none so far</div>';
  const max=Math.max(...rows.map(r=>r.value),1e-12),h=22,w=400,left=150;
  let s='<svg width="'+w+'" height="'+(rows.length*h+4)+'">';
  rows.forEach((r,i)=>{const bw=Math.max(1,(w-left-70)*r.value/max);
    s+='<text x="0" y="'+(i*h+15)+'">'+esc(r.label)+'</text><rect x="'+left+'" y="'+(i*h+3)+'" width="'+bw+'" height="14" fill="'+(r.color||'#4a78c2')+'"/>'+
       '<text x="'+(left+bw+4)+'" y="'+(i*h+15)+'" data-figure="'+esc(r.figure)+'" data-value="'+r.value+'">'+fmt(r.value,opts.digits??0)+'</text>';});
  return s+'</svg>';
}
function lineChart(history,field){
  const pts=history.filter(p=>p[field]!==null);
  if(pts.length===0)return '<div class="note">waiting for labels</div>';
  const subjects=[...new Set(history.map(p=>p.subject))];
  const t0=Math.min(...pts.map(p=>p.t)),t1=Math.max(...pts.map(p=>p.t));
  let lo=Math.min(...pts.map(p=>p[field])),hi=Math.max(...pts.map(p=>p[field]));
  if(hi-lo<1e-9){lo-=0.05;hi+=0.05}
  const W=400,H=170,L=44,B=20,x=t=>L+(t1===t0?0.5:(t-t0)/(t1-t0))*(W-L-8),y=v=>6+(1-(v-lo)/(hi-lo))*(H-B-6);
  let s='<svg width="'+W+'" height="'+H+'">';
  for(const v of [lo,(lo+hi)/2,hi])s+='<line x1="'+L+'" x2="'+W+'" y1="'+y(v)+'" y2="'+y(v)+'" stroke="#eef0f3"/><text x="0" y="'+(y(v)+4)+'">'+v.toFixed(3)+'</text>';
  s+='<text x="'+L+'" y="'+(H-4)+'">'+new Date(t0).toLocaleTimeString()+'</text><text x="'+(W-70)+'" y="'+(H-4)+'">'+new Date(t1).toLocaleTimeString()+'</text>';
  for(const sub of subjects){const ps=pts.filter(p=>p.subject===sub);if(ps.length===0)continue;
    const c=color(subjects,sub),d=ps.map((p,i)=>(i?'L':'M')+x(p.t).toFixed(1)+' '+y(p[field]).toFixed(1)).join(' ');
    s+='<path d="'+d+'" fill="none" stroke="'+c+'" stroke-width="'+(sub==='ensemble'?3:1.5)+'"/>';
    const last=ps[ps.length-1];s+='<circle cx="'+x(last.t)+'" cy="'+y(last[field])+'" r="3" fill="'+c+'"/>';}
  s+='</svg><div class="legend">'+subjects.map(sub=>'<span style="color:'+color(subjects,sub)+'">&#9632; '+esc(sub)+'</span>').join('')+'</div>';
  return s;
}
function statusBar(f){
  const total=f.COMPLETE+f.PARTIAL+f.INSUFFICIENT,W=400;let x=0,s='<svg width="'+W+'" height="26">';
  const parts=[['COMPLETE','#2e8b57'],['PARTIAL','#d4a017'],['INSUFFICIENT','#c0392b']];
  for(const [k,c] of parts){const w=total?W*f[k]/total:0;s+='<rect x="'+x+'" y="0" width="'+w+'" height="22" fill="'+c+'"/>';x+=w}
  s+='</svg><table><tr><th>status</th><th>results</th><th>share</th></tr>';
  for(const [k,c] of parts)s+='<tr><td><span class="badge" style="background:'+c+'">'+k+'</span></td><td>'+fig('fused.'+k,f[k],0)+'</td><td>'+(total?(100*f[k]/total).toFixed(1)+' %':'-')+'</td></tr>';
  return s+'<tr><td>total</td><td>'+fig('fused.total',total,0)+'</td><td></td></tr></table>';
}
function render(v){
  document.getElementById('strategy').textContent=v.strategy??'unknown';
  document.getElementById('updated').textContent=new Date(v.builtAtMs).toLocaleTimeString();
  document.getElementById('targets').innerHTML=v.targets.map(t=>'<span class="badge '+(t.up?'closed':'open')+'" title="'+esc(t.error??t.url)+'">'+esc(t.name)+(t.up?'':' down')+'</span>').join(' ');
  document.getElementById('status').innerHTML=statusBar(v.fused);
  const q=v.quality,entries=q?q.entries:[],subjects=entries.map(e=>e.subject);
  document.getElementById('window').textContent=q?q.window:'-';
  document.getElementById('generated').innerHTML=q?'<span data-figure="quality.generatedAtMs" data-value="'+q.generatedAtMs+'">'+new Date(q.generatedAtMs).toLocaleTimeString()+'</span>':'none yet';
  document.getElementById('quality').innerHTML=entries.length===0?'<div class="note">no metrics record yet</div>':
    '<table><tr><th>subject</th><th>labelled</th><th>accuracy</th><th>macro-F1</th><th>log loss</th></tr>'+entries.map(e=>
    '<tr><td style="color:'+color(subjects,e.subject)+'">'+esc(e.subject)+'</td><td>'+fig('labelled:'+e.subject,e.labelled,0)+'</td><td>'+fig('accuracy:'+e.subject,e.accuracy)+'</td><td>'+fig('macroF1:'+e.subject,e.macroF1)+'</td><td>'+fig('logLoss:'+e.subject,e.logLoss)+'</td></tr>').join('')+'</table>';
  for(const f of ['accuracy','macroF1','logLoss'])document.getElementById('chart-'+f).innerHTML=lineChart(v.history,f);
  document.getElementById('latency').innerHTML=bars(entries.flatMap(e=>[
    {label:e.subject+' p50',value:e.latencyP50Ms??0,figure:'latencyP50Ms:'+e.subject,color:color(subjects,e.subject)},
    {label:e.subject+' p99',value:e.latencyP99Ms??0,figure:'latencyP99Ms:'+e.subject,color:color(subjects,e.subject)}]),{digits:1});
  document.getElementById('weights').innerHTML='<table><tr><th>model</th><th>configured</th><th>learned</th></tr>'+v.weights.map(w=>
    '<tr><td>'+esc(w.model)+'</td><td>'+fig('weight.configured:'+w.model,w.configured,3)+'</td><td>'+fig('weight.learned:'+w.model,w.learned,3)+'</td></tr>').join('')+'</table>';
  const badge=(s,name)=>'<span class="badge '+(s??'none')+'" data-figure="'+esc(name)+'" data-value="'+(s??'')+'">'+(s??'n/a')+'</span>';
  document.getElementById('breakers').innerHTML='<table><tr><th>model</th><th>worker</th><th>join</th></tr>'+v.breakers.map(b=>
    '<tr><td>'+esc(b.model)+'</td><td>'+badge(b.worker,'breaker.worker:'+b.model)+'</td><td>'+badge(b.join,'breaker.join:'+b.model)+'</td></tr>').join('')+'</table>';
  document.getElementById('predictions').innerHTML='<table><tr><th>model</th><th>OK</th><th>ERROR</th><th>ABSTAIN</th></tr>'+v.predictions.map(p=>
    '<tr><td>'+esc(p.model)+'</td><td>'+fig('predictions.OK:'+p.model,p.OK,0)+'</td><td>'+fig('predictions.ERROR:'+p.model,p.ERROR,0)+'</td><td>'+fig('predictions.ABSTAIN:'+p.model,p.ABSTAIN,0)+'</td></tr>').join('')+'</table>';
  document.getElementById('missing').innerHTML=bars(Object.entries(v.missingByReason).map(([k,n])=>({label:k,value:n,figure:'missing:'+k,color:'#d4a017'})));
  document.getElementById('deadletters').innerHTML=bars(Object.entries(v.deadLettersByReason).map(([k,n])=>({label:k,value:n,figure:'deadLetters:'+k,color:'#c0392b'})));
  document.body.dataset.updates=String(Number(document.body.dataset.updates??0)+1);
}
const events=new EventSource('events');
events.onmessage=m=>render(JSON.parse(m.data));
</script></body></html>
`;
