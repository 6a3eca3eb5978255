"""Accessibility checks run inside the page: names, labels, language and text contrast."""

from __future__ import annotations

from playwright.async_api import Page

# WCAG 2.x contrast: 4.5:1 for text, 3:1 for large text (24 px, or 18.66 px bold). The
# background is the nearest ancestor's non-transparent one.
_CONTRAST = """() => {
  const rgba = s => { const m = s.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const lum = c => { const v = c.slice(0, 3).map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const background = el => { for (; el; el = el.parentElement) { const c = rgba(getComputedStyle(el).backgroundColor); if (c[3] > 0) return c; } return [255, 255, 255, 1]; };
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode());) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el.checkVisibility({visibilityProperty: true})) continue;
    const style = getComputedStyle(el);
    const a = lum(rgba(style.color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) bad.push(`${el.tagName} "${node.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)} < ${needed}`);
  }
  return bad;
}"""

_NAMES = """() => {
  const bad = [];
  if (!document.documentElement.lang) bad.push("html has no lang");
  if (!document.title.trim()) bad.push("no title");
  if (document.querySelectorAll("h1").length !== 1) bad.push("not exactly one h1");
  for (const el of document.querySelectorAll("input, select, textarea"))
    if (el.type !== "hidden" && el.labels.length === 0) bad.push(`${el.tagName}#${el.id} has no label`);
  for (const el of document.querySelectorAll("img"))
    if (!el.hasAttribute("alt")) bad.push(`img ${el.src} has no alt`);
  for (const el of document.querySelectorAll("svg"))
    if (el.getAttribute("role") !== "img" || !el.getAttribute("aria-label")) bad.push("svg without role=img and a label");
  for (const el of document.querySelectorAll("a, button"))
    if (!(el.getAttribute("aria-label") || el.textContent).trim()) bad.push(`${el.tagName} ${el.outerHTML.slice(0, 60)} has no name`);
  const ids = [...document.querySelectorAll("[id]")].map(e => e.id);
  for (const id of new Set(ids)) if (ids.indexOf(id) !== ids.lastIndexOf(id)) bad.push(`duplicate id ${id}`);
  return bad;
}"""


async def problems(page: Page) -> list[str]:
    """Everything on the page that the checks above find wrong (empty when all is well)."""
    return [*await page.evaluate(_NAMES), *await page.evaluate(_CONTRAST)]


async def focus_ring(page: Page) -> tuple[str, str, float]:
    """The focused element's tag and text, and the width of its visible outline in px."""
    return await page.evaluate("""() => {
      const el = document.activeElement, style = getComputedStyle(el);
      const width = style.outlineStyle === "none" ? 0 : parseFloat(style.outlineWidth);
      return [el.tagName, (el.getAttribute("aria-label") || el.textContent || el.id).trim(), width];
    }""")
