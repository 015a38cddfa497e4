// What every page uses: the htm template tag bound to Preact, and client-side navigation.
import { h } from "preact";
import htm from "htm";

export const html = htm.bind(h);

export const routeListeners = new Set();
export function navigate(path) {
  history.pushState(null, "", path);
  routeListeners.forEach((f) => f());
}
window.addEventListener("popstate", () => routeListeners.forEach((f) => f()));
document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest("a[href^='/']");
  if (!a || a.target || a.hasAttribute("download") || e.ctrlKey || e.metaKey || e.shiftKey) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});

// A form field's value as the user typed it.
export const val = (set) => (e) => set(e.target.value);
