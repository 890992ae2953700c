// The terminal: one command at a time on a server pty (PROTOCOL.md section 8.1), shown
// by xterm.js. Keys go out as exec.in, output comes back as exec.out, a new size of the
// panel as exec.resize; the run's exec.exit ends it and its status is shown.

import { FitAddon } from "/vendor/xterm/addon-fit.mjs";
import { Terminal } from "/vendor/xterm/xterm.mjs";
import { utf8 } from "./frames.js";

// xterm.js writes its theme and cell-size rules into <style> elements, which the page's
// Content-Security-Policy (no inline style) does not apply. The same rules are copied into
// a constructed style sheet, which the policy does not govern, so no allowance is needed.
function mirrorStyles(container) {
  const sheet = new CSSStyleSheet();
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  const copy = () => {
    const rules = [...container.querySelectorAll("style")].map((s) => s.textContent).join("\n");
    sheet.replaceSync(rules);
  };
  new MutationObserver(copy).observe(container, { childList: true, subtree: true, characterData: true });
  copy();
}

export class Term extends EventTarget {
  constructor(hub, container) {
    super();
    this.hub = hub;
    this.run = null; // id of the running command
    this.status = "";
    mirrorStyles(container);
    this.xterm = new Terminal({ convertEol: false, cursorBlink: true, scrollback: 5000 });
    this.fit = new FitAddon();
    this.xterm.loadAddon(this.fit);
    this.xterm.open(container);
    this.xterm.onData((keys) => this.keys(keys));
    this.xterm.onResize(({ cols, rows }) => {
      if (this.run !== null) this.hub.send({ op: "exec.resize", target: this.run, cols, rows });
    });
  }

  // Fits the terminal to its panel (when shown and when the window changes).
  resize() {
    this.fit.fit();
  }

  keys(keys) {
    // an empty exec.in would end the input: never send one for a key
    if (keys && this.run !== null) this.hub.send({ op: "exec.in", target: this.run }, utf8(keys));
  }

  setStatus(text) {
    this.status = text;
    this.dispatchEvent(new Event("change"));
  }

  // Runs `cmd` on a pty of the terminal's size; resolves with the exec.exit header.
  async start(cmd) {
    if (this.run !== null) throw new Error("a command is still running");
    this.resize();
    const { cols, rows } = this.xterm;
    const { id, done } = this.hub.start({ op: "exec.run", cmd, pty: { cols, rows, term: "xterm-256color" } }, undefined, (header, body) => {
      if (header.op === "exec.out") this.xterm.write(body);
    });
    this.run = id;
    this.setStatus(`running: ${cmd}`);
    this.xterm.focus();
    try {
      const { header } = await done;
      const how = header.status === null ? `signal ${header.signal}` : `status ${header.status}`;
      this.setStatus(`exited with ${how}${header.timed_out ? " (timed out)" : ""}`);
      return header;
    } catch (err) {
      this.setStatus(`failed: ${err.message}`);
      throw err;
    } finally {
      this.run = null;
    }
  }

  // Ctrl-C for the foreground job goes through the pty as a key; this ends the run itself.
  kill() {
    if (this.run !== null) this.hub.send({ op: "exec.kill", target: this.run, signal: "TERM" });
  }
}
