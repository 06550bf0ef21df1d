#!/usr/bin/env python3
"""The codebase's structure limits, measured: files over 700 lines and functions over
150 lines (outside tests, benches and fuzz targets; a file's trailing
`#[cfg(test)] mod` block does not count), and import circles between the modules of
each crate (A -> B when A names an item through B: `crate::b::...`, `super::...`,
`use crate::{...}`, `b::x` from its parent; comments, strings and test modules are
left out). Heuristic, not a parser: it reads Rust as this codebase writes it.

    scripts/structure.py [ROOT]     # prints what is over a limit; exit 1 if anything is
"""
import os, re, sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
root = os.path.relpath(root)
MAX_FILE, MAX_FN = 700, 150

def strip(src):
    # remove comments, strings, chars (approx) preserving newlines
    out=[];i=0;n=len(src)
    while i<n:
        c=src[i]
        if src.startswith('//',i):
            j=src.find('\n',i); j=n if j<0 else j; i=j; continue
        if src.startswith('/*',i):
            j=src.find('*/',i+2); j=n if j<0 else j+2; out.append('\n'*src.count('\n',i,j)); i=j; continue
        m=re.match(r'r(#*)"',src[i:i+10])
        if m and (i==0 or not (src[i-1].isalnum() or src[i-1]=='_')):
            h=m.group(1); end='"'+h; j=src.find(end,i+len(m.group(0))); j=n if j<0 else j+len(end)
            out.append('""'+'\n'*src.count('\n',i,j)); i=j; continue
        if c=='"':
            j=i+1
            while j<n and src[j]!='"':
                j+= 2 if src[j]=='\\' else 1
            out.append('""'+'\n'*src.count('\n',i,j)); i=j+1; continue
        if c=="'":
            m=re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|[^\\'])'",src[i:i+12])
            if m: out.append("' '"); i+=len(m.group(0)); continue
        out.append(c); i+=1
    return ''.join(out)
res_files=[];res_fns=[]
for dp,dn,fn in os.walk(root):
    dn[:]=[d for d in dn if d not in ('target','node_modules','.git','tests','benches','fuzz','.gl','.whl','examples') ]
    for f in fn:
        if not f.endswith('.rs'): continue
        p=os.path.join(dp,f); src=open(p).read()
        s=strip(src)
        lines=s.split('\n')
        # cut test module
        cut=len(lines)
        for k,l in enumerate(lines):
            if l.strip()=='#[cfg(test)]' and k+1<len(lines) and re.match(r'\s*mod \w+',lines[k+1]):
                cut=k;break
        res_files.append((cut,p))
        # functions
        for m in re.finditer(r'\bfn\s+(\w+)',s[:sum(len(l)+1 for l in lines[:cut])]):
            start=m.start(); 
            # find body open brace: first '{' after signature unless ';' comes first
            j=start; depth_paren=0
            while j<len(s):
                ch=s[j]
                if ch in '([': depth_paren+=1
                elif ch in ')]': depth_paren-=1
                elif ch==';' and depth_paren==0: j=-1;break
                elif ch=='{' and depth_paren==0: break
                j+=1
            if j<0 or j>=len(s): continue
            d=0;k=j
            while k<len(s):
                if s[k]=='{': d+=1
                elif s[k]=='}':
                    d-=1
                    if d==0: break
                k+=1
            l0=s.count('\n',0,start)+1; l1=s.count('\n',0,k)+1
            res_fns.append((l1-l0+1,p,m.group(1),l0))

bad = False
for c, p in sorted(res_files, reverse=True):
    if c > MAX_FILE:
        print(f"file {c} lines: {p}")
        bad = True
for c, p, name, l0 in sorted(res_fns, reverse=True):
    if c > MAX_FN:
        print(f"function {c} lines: {p}:{l0} {name}")
        bad = True
# Per crate (a folder with src/), modules are files; A -> B when A's code names an item
# path through B (crate::b::..., super::b, or an item defined in B imported via crate::{..}).
def crate_roots(root):
    for dp,dn,fn in os.walk(root):
        dn[:]=[d for d in dn if d not in ('target','node_modules','.git','tests','benches','fuzz')]
        if os.path.basename(dp)=='src' and ('lib.rs' in fn or 'main.rs' in fn):
            yield dp
def modpath(src, p):
    rel=os.path.relpath(p,src)[:-3].split(os.sep)
    if rel[-1] in ('lib','main','mod'): rel=rel[:-1]
    return tuple(rel)
def strip_tests(s):
    i=s.find('#[cfg(test)]\nmod tests')
    return s if i<0 else s[:i]
found=False
for src in crate_roots(root):
    files={}
    for dp,dn,fn in os.walk(src):
        for f in fn:
            if f.endswith('.rs'):
                p=os.path.join(dp,f); files[modpath(src,p)]=strip_tests(open(p).read())
    # items defined at top level of each module
    defs={}
    for m,s in files.items():
        for it in re.findall(r'^(?:pub(?:\([^)]*\))?\s+)?(?:struct|enum|fn|trait|type|const|static)\s+(\w+)',s,re.M):
            defs.setdefault(it,set()).add(m)
    edges={m:set() for m in files}
    for m,s in files.items():
        s2=re.sub(r'//.*','',s)
        # crate::a::b paths
        for path in re.findall(r'\bcrate((?:::\w+)+)',s2):
            parts=path.strip(':').split('::')
            # longest module prefix
            for k in range(len(parts),-1,-1):
                t=tuple(parts[:k])
                if t in files:
                    if t!=m: edges[m].add(t)
                    # item of t?
                    break
        # use crate::{A, B}
        for grp in re.findall(r'use\s+crate::\{([^}]*)\}',s2):
            for name in re.findall(r'\b(\w+)\b',grp):
                if ('',)!=() and (name,) in files: continue
                for dm in defs.get(name,()):
                    if dm==() and dm!=m: edges[m].add(dm)
        for name in re.findall(r'use\s+crate::(\w+)\s*;',s2):
            for dm in defs.get(name,()):
                if dm==() and dm!=m: edges[m].add(dm)
        # super::x
        for path in re.findall(r'\bsuper((?:::\w+)+)',s2):
            parent=m[:-1]
            parts=path.strip(':').split('::')
            t=parent+tuple(parts[:1])
            if t in files and t!=m: edges[m].add(t)
            elif parent in files and parent!=m:
                edges[m].add(parent)
        # use super::{a, b::c}
        for grp in re.findall(r'use\s+super::\{([^}]*)\}',s2):
            parent=m[:-1]
            for name in re.findall(r'\b(\w+)\b',grp):
                t=parent+(name,)
                if t in files and t!=m: edges[m].add(t)
                elif name in defs and parent in defs[name] and parent!=m: edges[m].add(parent)
        for grp in re.findall(r'use\s+crate::\{([^}]*)\}',s2):
            for name in re.findall(r'\b(\w+)\b',grp):
                if (name,) in files and (name,)!=m: edges[m].add((name,))
                elif name in defs and () in defs[name] and ()!=m: edges[m].add(())
    # parent declares/uses child: parent uses child::x
    for m,s in files.items():
        for name in re.findall(r'\b(\w+)::\w',re.sub(r'//.*','',s)):
            t=m+(name,)
            if t in files: edges[m].add(t)
    # SCCs
    idx={};low={};st=[];on=set();out=[];c=[0]
    def sc(v):
        idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in edges[v]:
            if w not in idx: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],idx[w])
        if low[v]==idx[v]:
            comp=[]
            while True:
                w=st.pop();on.discard(w);comp.append(w)
                if w==v: break
            if len(comp)>1: out.append(comp)
    import sys as _s; _s.setrecursionlimit(10000)
    for v in edges:
        if v not in idx: sc(v)
    for comp in out:
        found=True
        print('circle', src, ' <-> '.join('::'.join(x) or '(root)' for x in comp))

bad = bad or found
sys.exit(1 if bad else 0)
