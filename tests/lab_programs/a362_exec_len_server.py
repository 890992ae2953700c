#!/usr/bin/env python
# Author:Lee Sir 
#_*_ coding:utf-8 _*_ 

import socket 
from subprocess import Popen,PIPE 
import struct 

server = socket.socket(socket.AF_INET,socket.SOCK_STREAM) 
server.bind(('127.0.0.1',8000)) 
server.listen(5) 

while True: 
    print('等待连接......') 
    conn,addr = server.accept() 
    print('客户端地址为：',addr) 
    while True: 
        try: 
            cmd_bytes = conn.recv(1024) 
            if not cmd_bytes:continue 
            cmd_str = cmd_bytes.decode('utf-8') 
            print('执行的命令是：',cmd_str) 

            #执行命令 
            p = Popen(cmd_str,shell=True,stdout=PIPE,stderr=PIPE) 
            stdout,stderr = p.communicate() 

            #返回的数据 
            if stderr: 
                send_data = stderr 
            else: 
                send_data = stdout 

            #构建报头并发送报头 
            conn.send(struct.pack('i',len(send_data))) 

            #发送数据 
            conn.send(send_data) 
        except Exception: 
            break 
