/** node:path for commander (see events.ts): POSIX paths only. */
import { basename, dirname } from "../path.ts";

export { basename, dirname };

/** The last component's extension with its dot ("" for none or a leading dot only). */
export function extname(path: string): string {
  const base = basename(path);
  const dot = base.lastIndexOf(".");
  return dot <= 0 ? "" : base.slice(dot);
}

/** An absolute path: the parts from the last absolute one, on the working directory. */
export function resolve(...parts: string[]): string {
  let path = "";
  for (let i = parts.length - 1; i >= 0 && !path.startsWith("/"); i--) {
    if (parts[i]) path = path ? `${parts[i]}/${path}` : parts[i];
  }
  if (!path.startsWith("/")) path = `${Deno.cwd()}/${path}`;
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return `/${out.join("/")}`;
}
