// The presets a new chat may start from, offered in the model picker beside the models (as
// Open WebUI lists its custom models there); `/?preset=<id>` preselects one. Read by the
// page's script, not the server, so a page still costs its three database round trips.
// An option's value is the preset's base model (what the page shows and measures by); its
// `data-preset` is what starts the chat from it.
export async function offerPresets(select) {
  const response = await fetch("/api/presets");
  if (!response.ok) return;
  const wanted = new URLSearchParams(location.search).get("preset");
  const group = document.createElement("optgroup");
  group.label = "Presets";
  for (const preset of await response.json()) {
    const base = [...select.options].find((o) => !o.dataset.preset && o.value === preset.model);
    if (!base) continue;  // its model is not served now
    const option = new Option(preset.name, preset.model, false, preset.id === wanted);
    option.dataset.preset = preset.id;
    option.dataset.window = base.dataset.window;
    option.dataset.vision = base.dataset.vision;  // whether it takes images
    option.title = preset.description || `${preset.model}, preset`;
    group.append(option);
  }
  if (group.children.length) select.append(group);
  select.dataset.presets = String(group.children.length);
}
