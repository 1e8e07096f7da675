// The zapgate API reference page: renders /v1/openapi.json and lets a user try an operation.
// Everything is built with DOM calls and textContent (no HTML from data); the token lives in a variable.
"use strict";

let token = "";
let spec = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function refName(ref) {
  return ref.split("/").pop();
}

function schemaBlock(schema) {
  // A schema as indented JSON, with $refs linking to the schema list below.
  const pre = el("pre");
  const text = JSON.stringify(schema, null, 2);
  const parts = text.split(/("\$ref": "[^"]+")/);
  for (const part of parts) {
    const match = /^"\$ref": "([^"]+)"$/.exec(part);
    if (match) {
      pre.append('"$ref": ', el("a", { href: "#schema-" + refName(match[1]) }, '"' + match[1] + '"'));
    } else {
      pre.append(part);
    }
  }
  return pre;
}

function parameterTable(parameters) {
  if (!parameters.length) return null;
  const rows = parameters.map((p) =>
    el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, p.required ? "yes" : "no"),
      el("td", {}, p.description || ""), el("td", {}, el("code", {}, JSON.stringify(p.schema)))));
  return el("table", {}, el("tr", {}, ...["name", "in", "required", "description", "schema"].map((h) => el("th", {}, h))),
    ...rows);
}

function exampleBody(schema) {
  const body = {};
  for (const name of schema.required || []) {
    const field = (schema.properties || {})[name] || {};
    body[name] = field.type === "integer" || field.type === "number" ? 0 : field.type === "boolean" ? false :
      field.type === "array" ? [] : "";
  }
  return JSON.stringify(body, null, 2);
}

function tryForm(path, method, operation) {
  const inputs = {};
  const form = el("form", { class: "try" });
  for (const p of operation.parameters || []) {
    const input = el("input", { name: p.name, placeholder: p.required ? "required" : "optional" });
    inputs[p.name] = { input, where: p.in };
    form.append(el("label", {}, p.name + " (" + p.in + ") ", input), el("br"));
  }
  let body = null;
  const content = operation.requestBody && operation.requestBody.content["application/json"];
  if (content) {
    body = el("textarea", { spellcheck: "false" });
    body.value = exampleBody(content.schema);
    form.append(el("label", {}, "JSON body"), body);
  }
  const result = el("pre", { class: "result" });
  form.append(el("button", { type: "submit" }, "Send"), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    const headers = {};
    for (const [name, { input, where }] of Object.entries(inputs)) {
      if (input.value === "") continue;
      if (where === "path") url = url.replace("{" + name + "}", encodeURIComponent(input.value));
      else if (where === "query") query.append(name, input.value);
      else if (where === "header") headers[name] = input.value;
    }
    if (token) headers["Authorization"] = "Bearer " + token;
    const init = { method: method.toUpperCase(), headers, credentials: "omit", cache: "no-store" };
    if (body && body.value.trim()) {
      headers["Content-Type"] = "application/json";
      init.body = body.value;
    }
    const qs = query.toString();
    result.textContent = "…";
    try {
      const response = await fetch(url + (qs ? "?" + qs : ""), init);
      const text = await response.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
      result.textContent = response.status + " " + response.statusText + "\n" + shown;
    } catch (error) {
      result.textContent = String(error);
    }
  });
  return form;
}

function operationBlock(path, method, operation) {
  const id = "op-" + operation.operationId.replace(/[^A-Za-z0-9_-]/g, "-");
  const responses = el("div", {});
  for (const [status, response] of Object.entries(operation.responses)) {
    const schema = response.content && (response.content["application/json"] || {}).schema;
    responses.append(el("h4", {}, status + " — " + response.description));
    if (schema && status === "200") responses.append(schemaBlock(schema));
  }
  const content = operation.requestBody && operation.requestBody.content["application/json"];
  return el("details", { class: "op", id },
    el("summary", {}, el("span", { class: "method " + method }, method), " ", el("code", {}, path), " — ",
      operation.summary),
    el("div", {},
      el("p", {}, el("code", {}, operation.operationId)),
      el("pre", {}, operation.description || ""),
      el("h3", {}, "Parameters"), parameterTable(operation.parameters || []) || el("p", {}, "none"),
      content ? el("h3", {}, "Body") : null, content ? schemaBlock(content.schema) : null,
      el("h3", {}, "Responses"), responses,
      el("h3", {}, "Try it"), tryForm(path, method, operation)));
}

function render() {
  const main = document.getElementById("operations");
  const toc = document.getElementById("toc");
  main.textContent = "";
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const block = operationBlock(path, method, operation);
      main.append(block);
      toc.append(el("a", { href: "#" + block.id }, operation.operationId));
    }
  }
  const schemas = document.getElementById("schemas");
  for (const [name, schema] of Object.entries(spec.components.schemas)) {
    schemas.append(el("h3", { id: "schema-" + name }, name), schemaBlock(schema));
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  const input = document.getElementById("token");
  input.addEventListener("input", () => { token = input.value.trim(); });
  document.getElementById("auth").addEventListener("submit", (event) => event.preventDefault());
  try {
    const response = await fetch("/v1/openapi.json", { credentials: "omit" });
    spec = await response.json();
    render();
  } catch (error) {
    document.getElementById("status").textContent = "Could not load /v1/openapi.json: " + error;
  }
});
