// QR codes (ISO/IEC 18004), drawn in the page from the text of a session.qr event: byte mode, error
// correction level L (as WhatsApp's own pairing codes), versions 1 to 40. Written for zapgate; the tables
// are the standard's.

// Per version: [error correction codewords per block, blocks in group 1, data codewords per block in group 1,
// blocks in group 2 (each with one more data codeword)], for level L.
const BLOCKS_L = [
  [7,1,19,0], [10,1,34,0], [15,1,55,0], [20,1,80,0], [26,1,108,0], [18,2,68,0], [20,2,78,0], [24,2,97,0],
  [30,2,116,0], [18,2,68,2], [20,4,81,0], [24,2,92,2], [26,4,107,0], [30,3,115,1], [22,5,87,1], [24,5,98,1],
  [28,1,107,5], [30,5,120,1], [28,3,113,4], [28,3,107,5], [28,4,116,4], [28,2,111,7], [30,4,121,5], [30,6,117,4],
  [26,8,106,4], [28,10,114,2], [30,8,122,4], [30,3,117,10], [30,7,116,7], [30,5,115,10], [30,13,115,3], [30,17,115,0],
  [30,17,115,1], [30,13,115,6], [30,12,121,7], [30,6,121,14], [30,17,122,4], [30,4,122,18], [30,20,117,4], [30,19,118,6],
];
const LEVEL_L = 1; // the two format bits of level L

// GF(256) with the polynomial x^8 + x^4 + x^3 + x^2 + 1, for Reed-Solomon.
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
for (let i = 0, x = 1; i < 255; i++) {
  EXP[i] = EXP[i + 255] = x;
  LOG[x] = i;
  x = (x << 1) ^ (x & 0x80 ? 0x11d : 0);
}
const mul = (a, b) => (a && b ? EXP[LOG[a] + LOG[b]] : 0);

function generator(degree) {
  let poly = [1];
  for (let i = 0; i < degree; i++) {
    const next = new Array(poly.length + 1).fill(0);
    poly.forEach((c, j) => {
      next[j] ^= c;
      next[j + 1] ^= mul(c, EXP[i]);
    });
    poly = next;
  }
  return poly;
}

function errorCorrection(data, degree) {
  const gen = generator(degree);
  const rem = new Array(degree).fill(0);
  for (const byte of data) {
    const factor = byte ^ rem.shift();
    rem.push(0);
    for (let i = 0; i < degree; i++) rem[i] ^= mul(gen[i + 1], factor);
  }
  return rem;
}

function capacity(version) {
  const [, b1, d1, b2] = BLOCKS_L[version - 1];
  return b1 * d1 + b2 * (d1 + 1);
}

// The data codewords: mode, length, bytes, terminator and padding.
function dataCodewords(bytes, version) {
  const bits = [];
  const put = (value, length) => { for (let i = length - 1; i >= 0; i--) bits.push((value >>> i) & 1); };
  const total = capacity(version) * 8;
  put(0b0100, 4);
  put(bytes.length, version < 10 ? 8 : 16);
  bytes.forEach((b) => put(b, 8));
  put(0, Math.min(4, total - bits.length));
  put(0, (8 - (bits.length % 8)) % 8);
  for (let pad = 0xec; bits.length < total; pad ^= 0xec ^ 0x11) put(pad, 8);
  const words = [];
  for (let i = 0; i < bits.length; i += 8) words.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  return words;
}

// Split into blocks, add error correction to each, interleave.
function codewords(bytes, version) {
  const [ecc, b1, d1, b2] = BLOCKS_L[version - 1];
  const data = dataCodewords(bytes, version);
  const blocks = [];
  for (let i = 0, at = 0; i < b1 + b2; i++) {
    const length = i < b1 ? d1 : d1 + 1;
    blocks.push(data.slice(at, at + length));
    at += length;
  }
  const checks = blocks.map((block) => errorCorrection(block, ecc));
  const out = [];
  for (let i = 0; i <= d1; i++) for (const block of blocks) if (i < block.length) out.push(block[i]);
  for (let i = 0; i < ecc; i++) for (const check of checks) out.push(check[i]);
  return out;
}

function alignmentPositions(version) {
  if (version === 1) return [];
  const size = 17 + 4 * version;
  const count = Math.floor(version / 7) + 2;
  const step = version === 32 ? 26 : Math.ceil((size - 13) / (2 * count - 2)) * 2;
  const positions = [6];
  for (let i = count - 2; i >= 0; i--) positions.push(size - 7 - step * i);
  return positions;
}

// BCH codes of the format (15 bits) and version (18 bits) information.
function formatBits(mask) {
  const data = (LEVEL_L << 3) | mask;
  let rem = data;
  for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
  return ((data << 10) | rem) ^ 0x5412;
}

function versionBits(version) {
  let rem = version;
  for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
  return (version << 12) | rem;
}

const MASKS = [
  (x, y) => (x + y) % 2 === 0,
  (x, y) => y % 2 === 0,
  (x) => x % 3 === 0,
  (x, y) => (x + y) % 3 === 0,
  (x, y) => (Math.floor(y / 2) + Math.floor(x / 3)) % 2 === 0,
  (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
  (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
  (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
];

class Matrix {
  constructor(version) {
    this.size = 17 + 4 * version;
    this.dark = new Uint8Array(this.size * this.size);
    this.fixed = new Uint8Array(this.size * this.size); // function patterns: never data, never masked
  }
  get(x, y) { return this.dark[y * this.size + x]; }
  set(x, y, dark) {
    this.dark[y * this.size + x] = dark ? 1 : 0;
    this.fixed[y * this.size + x] = 1;
  }
}

function functionPatterns(m, version) {
  const n = m.size;
  for (const [cx, cy] of [[3, 3], [n - 4, 3], [3, n - 4]]) { // finders with their separators
    for (let dy = -4; dy <= 4; dy++) {
      for (let dx = -4; dx <= 4; dx++) {
        const x = cx + dx, y = cy + dy, d = Math.max(Math.abs(dx), Math.abs(dy));
        if (x >= 0 && x < n && y >= 0 && y < n) m.set(x, y, d !== 2 && d !== 4);
      }
    }
  }
  for (let i = 8; i < n - 8; i++) { m.set(6, i, i % 2 === 0); m.set(i, 6, i % 2 === 0); } // timing
  const at = alignmentPositions(version);
  for (const cx of at) {
    for (const cy of at) {
      const onFinder = (cx === 6 && cy === 6) || (cx === 6 && cy === n - 7) || (cx === n - 7 && cy === 6);
      if (onFinder) continue;
      for (let dy = -2; dy <= 2; dy++) {
        for (let dx = -2; dx <= 2; dx++) m.set(cx + dx, cy + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
      }
    }
  }
  drawFormat(m, 0); // reserves the format areas (and sets the dark module); drawn again with the mask chosen
  if (version >= 7) {
    const bits = versionBits(version);
    for (let i = 0; i < 18; i++) {
      const dark = (bits >>> i) & 1, a = n - 11 + (i % 3), b = Math.floor(i / 3);
      m.set(a, b, dark);
      m.set(b, a, dark);
    }
  }
}

function drawFormat(m, mask) {
  const n = m.size, bits = formatBits(mask), bit = (i) => (bits >>> i) & 1;
  for (let i = 0; i <= 5; i++) m.set(8, i, bit(i));
  m.set(8, 7, bit(6));
  m.set(8, 8, bit(7));
  m.set(7, 8, bit(8));
  for (let i = 9; i < 15; i++) m.set(14 - i, 8, bit(i));
  for (let i = 0; i < 8; i++) m.set(n - 1 - i, 8, bit(i));
  for (let i = 8; i < 15; i++) m.set(8, n - 15 + i, bit(i));
  m.set(8, n - 8, 1);
}

// Data bits go up and down two-module columns from the bottom right, skipping the timing column.
function placeData(m, words) {
  const n = m.size;
  let i = 0;
  for (let right = n - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    const upward = ((right + 1) & 2) === 0;
    for (let step = 0; step < n; step++) {
      const y = upward ? n - 1 - step : step;
      for (const x of [right, right - 1]) {
        if (m.fixed[y * n + x]) continue;
        const dark = i < words.length * 8 ? (words[i >>> 3] >>> (7 - (i & 7))) & 1 : 0;
        m.dark[y * n + x] = dark;
        i++;
      }
    }
  }
}

function applyMask(m, mask) {
  const n = m.size, test = MASKS[mask];
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) if (!m.fixed[y * n + x] && test(x, y)) m.dark[y * n + x] ^= 1;
  }
}

// The standard's penalty score: long runs, 2x2 blocks, finder-like patterns, and imbalance of dark and light.
function penalty(m) {
  const n = m.size;
  let score = 0, darkCount = 0;
  const finderLike = (line, i) => {
    const pattern = [1, 0, 1, 1, 1, 0, 1];
    if (!pattern.every((v, k) => line(i + k) === v)) return false;
    const light = (from) => [0, 1, 2, 3].every((k) => line(from + k) === 0);
    return light(i - 4) || light(i + 7);
  };
  for (let axis = 0; axis < 2; axis++) {
    for (let a = 0; a < n; a++) {
      const line = (b) => (b < 0 || b >= n ? 0 : axis ? m.get(a, b) : m.get(b, a));
      let run = 1;
      for (let b = 1; b <= n; b++) {
        if (b < n && line(b) === line(b - 1)) { run++; continue; }
        if (run >= 5) score += run - 2;
        run = 1;
      }
      for (let b = -10; b < n + 3; b++) if (finderLike(line, b)) score += 40;
    }
  }
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const c = m.get(x, y);
      darkCount += c;
      if (x < n - 1 && y < n - 1 && c === m.get(x + 1, y) && c === m.get(x, y + 1) && c === m.get(x + 1, y + 1)) {
        score += 3;
      }
    }
  }
  score += 10 * Math.floor(Math.abs(darkCount * 20 - n * n * 10) / (n * n));
  return score;
}

/** Encode `text` (UTF-8): {version, mask, size, dark(x, y)}. Throws RangeError when it is too long. */
export function encode(text) {
  const bytes = [...new TextEncoder().encode(text)];
  let version = 1;
  while (version <= 40 && 4 + (version < 10 ? 8 : 16) + bytes.length * 8 > capacity(version) * 8) version++;
  if (version > 40) throw new RangeError(`${bytes.length} bytes do not fit in a QR code`);
  const base = new Matrix(version);
  functionPatterns(base, version);
  placeData(base, codewords(bytes, version));
  let best = null;
  for (let mask = 0; mask < 8; mask++) {
    const m = new Matrix(version);
    m.dark.set(base.dark);
    m.fixed.set(base.fixed);
    applyMask(m, mask);
    drawFormat(m, mask);
    const score = penalty(m);
    if (!best || score < best.score) best = { score, mask, m };
  }
  const { m, mask } = best;
  return { version, mask, size: m.size, dark: (x, y) => m.get(x, y) === 1 };
}

/** An <svg> drawing of `text` as a QR code with a four-module quiet zone, labelled for screen readers. */
export function qrSvg(text, label) {
  const code = encode(text);
  const ns = "http://www.w3.org/2000/svg";
  const side = code.size + 8;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${side} ${side}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("shape-rendering", "crispEdges");
  svg.classList.add("qr");
  svg.dataset.version = String(code.version);
  svg.dataset.mask = String(code.mask);
  const background = document.createElementNS(ns, "rect");
  background.setAttribute("width", side);
  background.setAttribute("height", side);
  background.setAttribute("fill", "#fff");
  let d = "";
  for (let y = 0; y < code.size; y++) {
    for (let x = 0; x < code.size; x++) if (code.dark(x, y)) d += `M${x + 4} ${y + 4}h1v1h-1z`;
  }
  const modules = document.createElementNS(ns, "path");
  modules.setAttribute("d", d);
  modules.setAttribute("fill", "#000");
  svg.append(background, modules);
  return svg;
}
