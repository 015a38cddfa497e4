// Where the refresh token is kept between page loads: IndexedDB, whose committed writes every
// tab reads at once (localStorage reaches other tabs' processes a moment later, and a tab
// that read a refresh token another had just used would present a used one: the server then
// revokes the whole family). localStorage only where IndexedDB cannot be opened.
const DB = "lyceumd";
const STORE = "session";

function open() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function tx(mode, fn) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const q = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(q && q.result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

export async function load(key) {
  try { return (await tx("readonly", (s) => s.get(key))) || null; } catch { return localStorage.getItem(key); }
}

export async function save(key, value) {
  try {
    await tx("readwrite", (s) => (value === null ? s.delete(key) : s.put(value, key)));
  } catch {
    if (value === null) localStorage.removeItem(key); else localStorage.setItem(key, value);
  }
}
