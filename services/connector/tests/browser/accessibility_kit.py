"""Checks a person would make with a keyboard and a screen reader, run inside the browser."""

from __future__ import annotations

from typing import Any, Final

from playwright.async_api import Page

MAX_TABS: Final = 40

#: Every field labelled, every link and button named, every reference resolvable, every text legible.
_AUDIT_JS: Final = r"""
() => {
  const problems = [];
  const shown = (el) => {
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    return style.visibility !== "hidden" && style.display !== "none" && box.width > 1 && box.height > 1;
  };
  const name = (el) => (el.innerText || el.value || el.getAttribute("aria-label") || "").trim();
  if (!document.documentElement.lang) problems.push("the page has no lang");
  if (!document.title.trim()) problems.push("the page has no title");
  const headings = document.querySelectorAll("h1");
  if (headings.length !== 1) problems.push(`${headings.length} h1 elements`);
  const ids = new Set();
  for (const el of document.querySelectorAll("[id]")) {
    if (ids.has(el.id)) problems.push(`duplicate id ${el.id}`);
    ids.add(el.id);
  }
  for (const field of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    const labels = [...(field.labels || [])].filter((label) => label.innerText.trim());
    if (!labels.length && !field.getAttribute("aria-label") && !field.getAttribute("aria-labelledby")) {
      problems.push(`field ${field.name || field.id} has no label`);
    }
    for (const id of (field.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean)) {
      if (!document.getElementById(id)) problems.push(`field ${field.name}: no element ${id} describes it`);
    }
  }
  for (const control of document.querySelectorAll("a[href], button")) {
    if (shown(control) && !name(control)) problems.push(`a ${control.tagName.toLowerCase()} without a name`);
  }
  for (const image of document.querySelectorAll("img")) {
    if (!image.hasAttribute("alt")) problems.push("an image without alt text");
  }
  const rgb = (color) => {
    const parts = (color.match(/rgba?\(([^)]+)\)/) || [null, ""])[1].split(",").map(parseFloat);
    if (parts.length < 3) return null;
    return { r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1 };
  };
  const luminance = ({ r, g, b }) => {
    const channel = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const backdrop = (el) => {
    for (let at = el; at; at = at.parentElement) {
      const color = rgb(getComputedStyle(at).backgroundColor);
      if (color && color.a > 0.5) return color;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  for (const el of document.body.querySelectorAll("*")) {
    const ownText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    if (!ownText || !shown(el)) continue;
    const style = getComputedStyle(el);
    const fg = rgb(style.color);
    if (!fg) continue;
    const [light, dark] = [luminance(fg), luminance(backdrop(el))].sort((x, y) => y - x);
    const ratio = (light + 0.05) / (dark + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && parseInt(style.fontWeight, 10) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`contrast ${ratio.toFixed(2)}:1 for "${el.innerText.trim().slice(0, 40)}"`);
    }
  }
  return problems;
}
"""

_FOCUSED_JS: Final = r"""
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const label = el.labels && el.labels.length ? el.labels[0].innerText.trim() : "";
  return {
    tag: el.tagName.toLowerCase(),
    name: (label || el.innerText || el.value || el.getAttribute("aria-label") || "").trim(),
    id: el.id,
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
  };
}
"""


async def accessibility_problems(page: Page) -> list[str]:
    problems: list[str] = await page.evaluate(_AUDIT_JS)
    return problems


async def focused(page: Page) -> dict[str, Any] | None:
    element: dict[str, Any] | None = await page.evaluate(_FOCUSED_JS)
    return element


async def tab_to(page: Page, name: str) -> dict[str, Any]:
    """Press Tab until the control called ``name`` has the focus; it must show that it has it."""
    seen: list[str] = []
    for _ in range(MAX_TABS):
        await page.keyboard.press("Tab")
        element = await focused(page)
        if element is None:
            continue
        seen.append(element["name"])
        if element["name"] == name:
            assert element["outline"], f"{name} has the focus but shows no focus ring"
            return element
    raise AssertionError(f"Tab never reached {name!r}; it went through {seen}")


async def tab_order(page: Page) -> list[dict[str, Any]]:
    """Every control Tab reaches, once round, from the top of the page."""
    await page.evaluate("() => document.activeElement && document.activeElement.blur()")
    order: list[dict[str, Any]] = []
    for _ in range(MAX_TABS):
        await page.keyboard.press("Tab")
        element = await focused(page)
        if element is None or (order and element == order[0]):
            break
        order.append(element)
    return order
