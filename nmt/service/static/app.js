// The page: send the sentence to /v1/translate with attention, show the n-best and the chosen one's heatmap.
"use strict";
const $ = (id) => document.getElementById(id);
let health = null;

async function loadHealth() {
  health = await (await fetch("/health")).json();
  $("languages").textContent = `${health.source_language} → ${health.target_language}, beam ${health.beam_size}`;
  $("api-key").hidden = !health.api_key_required;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function translate(event) {
  event.preventDefault();
  const button = $("translate");
  button.disabled = true;
  showError("");
  try {
    const response = await fetch("/v1/translate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ q: [$("source").value], nbest: health ? health.beam_size : 1, attention: true,
                             api_key: $("api-key").value }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    show(body.translations[0]);
  } catch (error) {
    showError(`Could not translate: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

function show(translation) {
  const list = $("alternatives");
  list.replaceChildren();
  translation.hypotheses.forEach((hyp, index) => {
    const item = document.createElement("li");
    item.append(hyp.text || "(empty)");
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = hyp.score.toFixed(3);
    item.append(score);
    item.addEventListener("click", () => choose(translation, index));
    list.append(item);
  });
  $("result").hidden = false;
  choose(translation, 0);
}

function choose(translation, index) {
  const hyp = translation.hypotheses[index];
  $("translation").textContent = hyp.text;
  [...$("alternatives").children].forEach((li, i) => li.classList.toggle("chosen", i === index));
  drawHeatmap(translation.source_tokens, hyp.tokens, hyp.attention || []);
}

function drawHeatmap(source, target, weights) {
  const table = $("heatmap");
  const head = document.createElement("thead");
  const top = head.insertRow();
  top.append(document.createElement("th"));
  for (const token of source) {
    const th = document.createElement("th");
    th.textContent = token;
    top.append(th);
  }
  const body = document.createElement("tbody");
  // Shade relative to the strongest weight, so a diffuse map still shows where the model looked most.
  const strongest = Math.max(1e-6, ...weights.flat());
  target.forEach((token, row) => {
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.textContent = token;
    tr.append(th);
    source.forEach((sourceToken, col) => {
      const weight = (weights[row] || [])[col] || 0;
      const td = tr.insertCell();
      td.style.background = `rgba(40, 86, 201, ${(weight / strongest).toFixed(3)})`;
      td.dataset.label = `${sourceToken} → ${token}: ${weight.toFixed(3)}`;
      td.setAttribute("aria-label", td.dataset.label);
    });
  });
  table.replaceChildren(head, body);
}

function hover(event) {
  const tip = $("tooltip");
  const label = event.target.dataset && event.target.dataset.label;
  tip.hidden = !label;
  if (!label) return;
  tip.textContent = label;
  tip.style.left = `${Math.min(event.clientX + 12, window.innerWidth - tip.offsetWidth - 4)}px`;
  tip.style.top = `${event.clientY + 14}px`;
}

$("form").addEventListener("submit", translate);
$("heatmap").addEventListener("mousemove", hover);
$("heatmap").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
loadHealth().catch((error) => showError(`The service did not answer: ${error.message}`));
