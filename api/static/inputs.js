// Inputs a task waits for (`wait_for_input`): a form built from the input's JSON Schema,
// in the task view (delivered with the page's key) and behind a one-time link
// (`#/input/<token>`, delivered with no key: the token is the credential).
//
// The form knows the shapes task code usually asks for — booleans (a checkbox), strings,
// numbers and integers, each optional or not — and falls back to one JSON text area
// for anything else, so every schema can be answered.

import { client, problemText, withKey } from "./api.js";

const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

function simpleType(schema) {
  // `anyOf: [{type: T}, {type: "null"}]` is pydantic's optional T.
  const options = schema.anyOf ? schema.anyOf.filter((s) => s.type !== "null") : [schema];
  if (options.length !== 1) return null;
  const type = options[0].type;
  return ["boolean", "string", "number", "integer"].includes(type) ? type : null;
}

function fieldsOf(schema) {
  const properties = schema?.properties;
  if (schema?.type !== "object" || !properties) return null;
  const required = new Set(schema.required || []);
  const fields = [];
  for (const [name, property] of Object.entries(properties)) {
    const type = simpleType(property);
    if (!type) return null;
    fields.push({ name, type, required: required.has(name), title: property.title || name });
  }
  return fields;
}

/** A form for input `name`; `deliver(value)` sends it and resolves when the task took it. */
export function inputForm({ name, schema, prompt, idPrefix, deliver }) {
  const fields = fieldsOf(schema);
  const form = el("form", { className: "input-form" });
  form.dataset.input = name;
  form.append(el("h4", {}, `Input: ${name}`));
  if (prompt) form.append(el("p", { className: "prompt" }, prompt));
  const controls = new Map();
  if (fields) {
    for (const field of fields) {
      const id = `${idPrefix}-${name}-${field.name}`;
      const label = el("label", { htmlFor: id }, field.title);
      let control;
      if (field.type === "boolean") {
        control = el("input", { id, type: "checkbox", name: field.name });
        form.append(el("div", { className: "field checkbox" }, control, label));
      } else {
        const type = field.type === "string" ? "text" : "number";
        control = el("input", { id, type, name: field.name, required: field.required });
        if (field.type === "integer") control.step = "1";
        if (field.type === "number") control.step = "any";
        form.append(el("div", { className: "field" }, label, control));
      }
      controls.set(field.name, { control, field });
    }
  } else {
    const id = `${idPrefix}-${name}-json`;
    const area = el("textarea", { id, rows: 5, spellcheck: false, value: "{}" });
    form.append(el("div", { className: "field" }, el("label", { htmlFor: id }, "Value (JSON)"), area));
    controls.set(null, { control: area });
  }
  const error = el("p", { className: "error", role: "alert" });
  const button = el("button", { type: "submit" }, `Send ${name}`);
  form.append(error, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    let value;
    try {
      value = readValue(controls);
    } catch (problem) {
      error.textContent = problem.message;
      return;
    }
    button.disabled = true;
    try {
      await deliver(value);
      form.dataset.delivered = "true";
    } catch (problem) {
      error.textContent = problemText(problem);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function readValue(controls) {
  const raw = controls.get(null);
  if (raw) {
    try {
      return JSON.parse(raw.control.value || "{}");
    } catch (error) {
      throw new Error(`The value is not valid JSON: ${error.message}`);
    }
  }
  const value = {};
  for (const [name, { control, field }] of controls) {
    if (field.type === "boolean") value[name] = control.checked;
    else if (control.value === "" && !field.required) continue;
    else value[name] = field.type === "string" ? control.value : Number(control.value);
  }
  return value;
}

/** The waiting inputs of the open task view: a form each, gone once delivered. */
export class TaskInputs {
  constructor(container, taskId) {
    this.container = container;
    this.taskId = taskId;
    this.forms = new Map();
  }

  apply(envelope) {
    const data = envelope.data || {};
    if (envelope.type === "task.input.requested.v1") {
      this.remove(data.name);
      const form = inputForm({
        name: data.name,
        schema: data.input_schema,
        prompt: data.prompt,
        idPrefix: "task-input",
        deliver: (value) => withKey((tp) => tp.tasks.sendInput(this.taskId, data.name, value)),
      });
      this.forms.set(data.name, form);
      this.container.append(form);
    } else if (envelope.type === "task.input.received.v1") {
      this.remove(data.name);
    } else if (envelope.type === "task.reset.v1") {
      for (const name of [...this.forms.keys()]) this.remove(name);
    }
    this.container.hidden = this.forms.size === 0;
  }

  clearAll() {
    for (const name of [...this.forms.keys()]) this.remove(name);
    this.container.hidden = true;
  }

  remove(name) {
    this.forms.get(name)?.remove();
    this.forms.delete(name);
  }
}

/** `#/input/<token>`: the page behind a one-time link. No key is asked for. */
export async function openInputLink(token, { section, summary, formBox, done }) {
  formBox.replaceChildren();
  done.textContent = "";
  summary.textContent = "Loading…";
  const links = client().inputLinks; // sends no key: the link's token is the credential
  let state;
  try {
    state = await links.get(token);
  } catch (error) {
    summary.textContent = problemText(error);
    return;
  }
  summary.textContent = `Task ${state.task_id} (${state.task_type || "?"}) is ${state.status}.`;
  if (state.used) {
    done.textContent = "This link was used already.";
  } else if (!state.waiting) {
    done.textContent = `The task is not waiting for ${state.name} now.`;
  } else {
    const form = inputForm({
      name: state.name,
      schema: state.waiting.input_schema,
      prompt: state.waiting.prompt,
      idPrefix: "link-input",
      deliver: async (value) => {
        await links.send(token, value);
        form.remove();
        done.textContent = `Sent: the task has ${state.name}. You may close this page.`;
      },
    });
    formBox.append(form);
  }
  section.hidden = false;
}
