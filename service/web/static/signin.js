import { ApiError, api, announce, saveKey } from "./api.js";

const form = document.getElementById("signin");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = form.key.value.trim();
  try {
    const me = await api("GET", "/v1/me", { key });
    saveKey(key);
    const next = new URLSearchParams(location.search).get("next");
    const home = me.role === "annotator" ? "/ui/annotate" : "/ui/projects";
    location.assign(next && next.startsWith("/ui/") ? next : home);
  } catch (error) {
    announce(error instanceof ApiError && error.status === 401
      ? "That key was not accepted. Check it and try again."
      : `Could not sign in: ${error.message}`, "error");
    form.key.focus();
  }
});
form.key.focus();
