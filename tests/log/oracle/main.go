// Command oracle checks assay's transparency-log formats against Go's reference
// implementation, golang.org/x/mod/sumdb/tlog and sumdb/note (Debian's
// golang-golang-x-mod-dev, built offline in GOPATH mode by tests/log/conftest.py).
//
// It reads a JSON array of requests on stdin and writes a JSON array of answers,
// one per request. Each request has an "op":
//
//	open_note         verify a signed note with verifier keys (note.Open); cosigner
//	                  keys (type 0x04) are checked by a C2SP tlog-cosignature verifier
//	check_inclusion   tlog.CheckRecord on an inclusion proof
//	check_consistency tlog.CheckTree on a consistency proof
//	tree              build a tree from entries (tlog.StoredHashes): every stored hash,
//	                  root hashes, tiles (tlog.NewTiles/ReadTileData at height 8, under
//	                  C2SP paths), and inclusion/consistency proofs (ProveRecord/ProveTree)
//	read_tiles        read hashes through tlog.TileHashReader from tiles given by C2SP
//	                  path (Go checks them against the tree hash) and prove records
//	generate_key      note.GenerateKey
//	sign_note         note.Sign with a signer key
//	cosign            add a cosignature/v1 signature with a given seed and timestamp
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

type request struct {
	Op            string            `json:"op"`
	Note          string            `json:"note"`
	Vkeys         []string          `json:"vkeys"`
	CosignerVkeys []string          `json:"cosigner_vkeys"`
	Size          int64             `json:"size"`
	Index         int64             `json:"index"`
	OldSize       int64             `json:"old_size"`
	NewSize       int64             `json:"new_size"`
	Root          tlog.Hash         `json:"root"`
	OldRoot       tlog.Hash         `json:"old_root"`
	NewRoot       tlog.Hash         `json:"new_root"`
	Leaf          tlog.Hash         `json:"leaf"`
	Proof         []tlog.Hash       `json:"proof"`
	Entries       [][]byte          `json:"entries"`
	Inclusion     [][2]int64        `json:"inclusion"`
	Consistency   [][2]int64        `json:"consistency"`
	Tiles         map[string][]byte `json:"tiles"`
	Indexes       []int64           `json:"indexes"`
	Name          string            `json:"name"`
	Skey          string            `json:"skey"`
	Text          string            `json:"text"`
	Seed          []byte            `json:"seed"`
	Timestamp     uint64            `json:"timestamp"`
}

type answer map[string]interface{}

func main() {
	var reqs []request
	if err := json.NewDecoder(os.Stdin).Decode(&reqs); err != nil {
		fmt.Fprintln(os.Stderr, "oracle: bad input:", err)
		os.Exit(2)
	}
	out := make([]answer, len(reqs))
	for i, r := range reqs {
		a, err := run(r)
		if err != nil {
			a = answer{"ok": false, "error": err.Error()}
		} else {
			a["ok"] = true
		}
		out[i] = a
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "oracle:", err)
		os.Exit(2)
	}
}

func run(r request) (answer, error) {
	switch r.Op {
	case "open_note":
		return openNote(r)
	case "check_inclusion":
		return answer{}, tlog.CheckRecord(r.Proof, r.Size, r.Root, r.Index, r.Leaf)
	case "check_consistency":
		return answer{}, tlog.CheckTree(r.Proof, r.NewSize, r.NewRoot, r.OldSize, r.OldRoot)
	case "tree":
		return tree(r)
	case "read_tiles":
		return readTiles(r)
	case "generate_key":
		skey, vkey, err := note.GenerateKey(rand.Reader, r.Name)
		return answer{"skey": skey, "vkey": vkey}, err
	case "sign_note":
		s, err := note.NewSigner(r.Skey)
		if err != nil {
			return nil, err
		}
		msg, err := note.Sign(&note.Note{Text: r.Text}, s)
		return answer{"note": string(msg)}, err
	case "cosign":
		return cosign(r)
	}
	return nil, fmt.Errorf("unknown op %q", r.Op)
}

func openNote(r request) (answer, error) {
	var vs []note.Verifier
	for _, k := range r.Vkeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("verifier key %q: %w", k, err)
		}
		vs = append(vs, v)
	}
	for _, k := range r.CosignerVkeys {
		v, err := newCosignatureVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("cosigner key %q: %w", k, err)
		}
		vs = append(vs, v)
	}
	n, err := note.Open([]byte(r.Note), note.VerifierList(vs...))
	if err != nil {
		return nil, err
	}
	var verified []string
	for _, s := range n.Sigs {
		verified = append(verified, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	return answer{"text": n.Text, "verified": verified, "unverified": len(n.UnverifiedSigs)}, nil
}

// The cosignature/v1 verifier of C2SP tlog-cosignature: key ID type byte 0x04,
// signature = u64 big-endian timestamp || Ed25519 signature over
// "cosignature/v1\ntime <ts>\n" || note text.
type cosignatureVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func cosignatureKeyHash(name string, pub []byte) uint32 {
	h := sha256.Sum256(append(append([]byte(name+"\n"), 0x04), pub...))
	return binary.BigEndian.Uint32(h[:4])
}

func newCosignatureVerifier(vkey string) (note.Verifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("malformed")
	}
	hash, err := strconv.ParseUint(parts[1], 16, 32)
	key, err2 := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || err2 != nil || len(parts[1]) != 8 || len(key) != 33 || key[0] != 0x04 {
		return nil, errors.New("malformed")
	}
	if uint32(hash) != cosignatureKeyHash(parts[0], key[1:]) {
		return nil, errors.New("key hash mismatch")
	}
	return &cosignatureVerifier{parts[0], uint32(hash), ed25519.PublicKey(key[1:])}, nil
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig[:8])
	m := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", ts)), msg...)
	return ed25519.Verify(v.key, m, sig[8:])
}

type cosignatureSigner struct {
	name string
	key  ed25519.PrivateKey
	ts   uint64
}

func (s *cosignatureSigner) Name() string { return s.name }
func (s *cosignatureSigner) KeyHash() uint32 {
	return cosignatureKeyHash(s.name, s.key.Public().(ed25519.PublicKey))
}
func (s *cosignatureSigner) Sign(msg []byte) ([]byte, error) {
	m := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", s.ts)), msg...)
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], s.ts)
	return append(out[:], ed25519.Sign(s.key, m)...), nil
}

func cosign(r request) (answer, error) {
	if len(r.Seed) != ed25519.SeedSize {
		return nil, errors.New("seed must be 32 bytes")
	}
	s := &cosignatureSigner{r.Name, ed25519.NewKeyFromSeed(r.Seed), r.Timestamp}
	// Keep the note's existing signatures (unverified, as Go's Sign carries them over).
	n, err := note.Open([]byte(r.Note), note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return nil, fmt.Errorf("cannot parse note: %v", err)
	}
	n = unverified.Note
	msg, err := note.Sign(n, s)
	pub := append([]byte{0x04}, s.key.Public().(ed25519.PublicKey)...)
	vkey := fmt.Sprintf("%s+%08x+%s", s.name, s.KeyHash(), base64.StdEncoding.EncodeToString(pub))
	return answer{"note": string(msg), "vkey": vkey}, err
}

// hashStorage is the flat stored-hash array of tlog's tests: hash i at index i.
type hashStorage []tlog.Hash

func (s hashStorage) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s)) {
			return nil, fmt.Errorf("index %d not stored", x)
		}
		out[i] = s[x]
	}
	return out, nil
}

// c2spPath turns Go's tile path tile/8/L/N[.p/W] into C2SP tlog-tiles' tile/L/N[.p/W].
func c2spPath(t tlog.Tile) string {
	return strings.Replace(t.Path(), fmt.Sprintf("tile/%d/", height), "tile/", 1)
}

func tree(r request) (answer, error) {
	var storage hashStorage
	var roots []tlog.Hash
	for i, e := range r.Entries {
		hs, err := tlog.StoredHashes(int64(i), e, storage)
		if err != nil {
			return nil, err
		}
		storage = append(storage, hs...)
		root, err := tlog.TreeHash(int64(i+1), storage)
		if err != nil {
			return nil, err
		}
		roots = append(roots, root)
	}
	n := int64(len(r.Entries))
	// NewTiles lists every partial width up to the current one; a tree of size n
	// has only the widest partial tile at each level.
	widest := map[[2]int64]tlog.Tile{}
	for _, t := range tlog.NewTiles(height, 0, n) {
		k := [2]int64{int64(t.L), t.N}
		if w, ok := widest[k]; !ok || t.W > w.W {
			widest[k] = t
		}
	}
	tiles := map[string][]byte{}
	for _, t := range widest {
		data, err := tlog.ReadTileData(t, storage)
		if err != nil {
			return nil, err
		}
		tiles[c2spPath(t)] = data
	}
	var inclusion [][]tlog.Hash
	for _, p := range r.Inclusion {
		proof, err := tlog.ProveRecord(p[1], p[0], storage)
		if err != nil {
			return nil, err
		}
		inclusion = append(inclusion, proof)
	}
	var consistency [][]tlog.Hash
	for _, p := range r.Consistency {
		proof, err := tlog.ProveTree(p[1], p[0], storage)
		if err != nil {
			return nil, err
		}
		consistency = append(consistency, proof)
	}
	return answer{
		"hashes": []tlog.Hash(storage), "roots": roots, "tiles": tiles,
		"inclusion": inclusion, "consistency": consistency,
		"stored_hash_count": tlog.StoredHashCount(n),
	}, nil
}

type tileMap map[string][]byte

func (m tileMap) Height() int { return height }
func (m tileMap) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, ok := m[c2spPath(t)]
		if !ok {
			return nil, fmt.Errorf("no tile %s", c2spPath(t))
		}
		out[i] = data
	}
	return out, nil
}
func (m tileMap) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func readTiles(r request) (answer, error) {
	thr := tlog.TileHashReader(tlog.Tree{N: r.Size, Hash: r.Root}, tileMap(r.Tiles))
	var leaves []tlog.Hash
	var proofs [][]tlog.Hash
	for _, i := range r.Indexes {
		h, err := thr.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
		if err != nil {
			return nil, err
		}
		leaves = append(leaves, h[0])
		p, err := tlog.ProveRecord(r.Size, i, thr)
		if err != nil {
			return nil, err
		}
		proofs = append(proofs, p)
	}
	root, err := tlog.TreeHash(r.Size, thr)
	if err != nil {
		return nil, err
	}
	return answer{"leaves": leaves, "proofs": proofs, "root": root}, nil
}
